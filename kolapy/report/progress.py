"""RunProgress: what a run is doing right now (tests, machines, elapsed).

Fed on the controller from two sides: pytest's test reports (which arrive
there from every xdist worker) and the machine events the workers append to
the run's event log (:mod:`kolapy.report.events`).  The renderers in
:mod:`kolapy.report.live` read it; every change also queues a one-line
:class:`ProgressLine` for the plain (non-tty) renderer.

Thread-safe: hooks feed it from pytest's thread while the live view reads it
from its own; hold :attr:`RunProgress.lock` to read a consistent state.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kolapy.report.collector import (
    INFRA,
    KEY_ERROR_KIND,
    KEY_NAME,
    KEY_WARN,
    _failure_message,
    _skip_reason,
    _warn_downgrade,
)

OUTCOMES = ("PASS", "WARN", "FAIL", "ERROR", "SKIP")
RECENT = 5
"""How many finished tests the live view lists."""
_SHOWN = ("waiting", "booting", "ready", "failed", "stopped", "step")


@dataclass
class MachineProgress:
    """One machine as the event log tells it."""

    name: str
    test: str
    worker: str
    state: str
    """``booting``, ``ready``, ``failed`` or ``stopped``."""
    since: float
    """When it started booting (epoch seconds)."""
    boot_s: float | None = None
    """Seconds from booting to ready (or to the boot failure)."""
    error: str = ""
    step: str = ""
    """The last step its test reported (the ``progress`` fixture)."""


@dataclass
class TestProgress:
    """One pytest item (a kola test or subtest) on its way through the run."""

    nodeid: str
    label: str
    started: float
    outcome: str | None = None
    duration_s: float = 0.0
    message: str = ""
    warned: bool = False
    downgrade: bool = False


@dataclass(frozen=True)
class ProgressLine:
    """One event worth a line of its own: ``t`` in epoch seconds, ``text`` plain."""

    t: float
    text: str
    outcome: str | None = None


def seconds(value: float) -> str:
    """``1.2 s`` below ten seconds, ``148 s`` above."""
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def clock_time(value: float) -> str:
    """Elapsed time as ``42s`` or ``3m07s``."""
    if value < 60:
        return f"{value:.0f}s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}m{secs:02d}s"


class RunProgress:
    """The progress model of one run; see the module docstring."""

    __test__ = False  # not a pytest test class, whatever the name suggests

    def __init__(self, start: float | None = None, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.start = clock() if start is None else start
        self.lock = threading.RLock()
        self.total: int | None = None
        self.machines: dict[str, MachineProgress] = {}
        self.running: dict[str, TestProgress] = {}
        self.recent: deque[TestProgress] = deque(maxlen=RECENT)
        self.counts: Counter[str] = Counter()
        self._lines: list[ProgressLine] = []

    # -- feeding ---------------------------------------------------------
    def set_total(self, total: int) -> None:
        """The number of collected tests (every xdist worker reports the same)."""
        with self.lock:
            if self.total is None:
                self._say(f"{total} test{'s' if total != 1 else ''} to run")
            self.total = total

    def machine_event(self, event: Mapping[str, Any]) -> None:
        """Apply one event from the event log (unknown kinds are ignored)."""
        kind = str(event.get("event", ""))
        if kind not in _SHOWN:
            return  # e.g. a test's timing or a machine stopping: the timeline's, not ours
        name = str(event.get("machine", ""))
        t = float(event.get("t") or self.clock())
        if kind == "step":
            self._step(name, str(event.get("test", "")), str(event.get("text", "")), t)
            return
        with self.lock:
            m = self.machines.get(name)
            if m is None or (kind == "booting" and m.state != "waiting"):
                m = self.machines[name] = MachineProgress(
                    name, str(event.get("test", "")), str(event.get("worker", "")), "booting", t
                )
            if kind == "waiting":
                m.state = "waiting"
                need = event.get("need_mib")
                self._say(f"machine {name} waiting for memory"
                          + (f" ({need} MiB)" if need else ""), t)
            elif kind == "booting":
                m.state, m.since = "booting", t
                self._say(f"machine {name} booting" + (f" for {m.test}" if m.test else ""), t)
            elif kind == "ready":
                m.state, m.boot_s = "ready", t - m.since
                self._say(f"machine {name} ready ({seconds(m.boot_s)})", t)
            elif kind == "failed":
                m.state, m.boot_s, m.error = "failed", t - m.since, str(event.get("error", ""))
                why = f": {m.error}" if m.error else ""
                self._say(f"machine {name} failed to boot after {seconds(m.boot_s)}{why}", t)
            elif kind == "stopped" and m.state != "stopped":
                m.state = "stopped"
                self._say(f"machine {name} stopped", t)

    def test_started(self, nodeid: str) -> None:
        """pytest started an item (its setup may boot a machine)."""
        with self.lock:
            self._test(nodeid)

    def test_report(self, report: Any) -> None:
        """Apply one phase report (setup, call, teardown) of an item."""
        props = dict(getattr(report, "user_properties", ()) or ())
        with self.lock:
            test = self._test(report.nodeid)
            if props.get(KEY_NAME):
                test.label = str(props[KEY_NAME])
            test.duration_s += float(getattr(report, "duration", 0.0) or 0.0)
            test.warned = test.warned or bool(props.get(KEY_WARN))
            test.downgrade = test.downgrade or _warn_downgrade(props)
            _apply(test, report, props)
            if report.when == "teardown":
                self._finish(test)

    def take_lines(self) -> list[ProgressLine]:
        """The lines queued since the last call, oldest first."""
        with self.lock:
            lines, self._lines = self._lines, []
        return sorted(lines, key=lambda line: line.t)

    # -- reading ---------------------------------------------------------
    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the run started."""
        return (self.clock() if now is None else now) - self.start

    @property
    def done(self) -> int:
        """Tests finished so far."""
        return sum(self.counts.values())

    def active_machines(self) -> list[MachineProgress]:
        """Machines booting, ready or failed (not yet stopped), in boot order."""
        with self.lock:
            return [m for m in self.machines.values() if m.state != "stopped"]

    def summary(self, now: float | None = None) -> str:
        """One closing line: tests, outcomes, machines and their boot times."""
        with self.lock:
            text = f"ran {self.done} test{'s' if self.done != 1 else ''} and subtests"
            text += f" in {clock_time(self.elapsed(now))}"
            counted = ", ".join(f"{self.counts[o]} {o}" for o in OUTCOMES if self.counts[o])
            text += f": {counted}" if counted else ""
            boots = [m.boot_s for m in self.machines.values() if m.boot_s is not None]
            if self.machines:
                text += f"; {len(self.machines)} machine{'s' if len(self.machines) != 1 else ''}"
                if boots:
                    text += (
                        f" (boot mean {seconds(sum(boots) / len(boots))}, "
                        f"max {seconds(max(boots))})"
                    )
        return text

    # -- internals ---------------------------------------------------------
    def _step(self, machine: str, test: str, text: str, t: float) -> None:
        with self.lock:
            m = self.machines.get(machine)
            if m is not None:
                m.step = text
            where = f" on {machine}" if machine else ""
            self._say(f"{test}{where}: {text}", t)

    def _test(self, nodeid: str) -> TestProgress:
        test = self.running.get(nodeid)
        if test is None:
            test = self.running[nodeid] = TestProgress(nodeid, _label(nodeid), self.clock())
        return test

    def _finish(self, test: TestProgress) -> None:
        outcome = test.outcome or "PASS"
        failed = outcome in ("FAIL", "ERROR")
        if (failed and test.downgrade) or (outcome == "PASS" and test.warned):
            outcome = "WARN"
        test.outcome = outcome
        self.running.pop(test.nodeid, None)
        self.recent.append(test)
        self.counts[outcome] += 1
        text = f"{outcome} {test.label} ({seconds(test.duration_s)})"
        if test.message:
            text += f": {test.message}"
        self._say(text, outcome=outcome)

    def _say(self, text: str, t: float | None = None, outcome: str | None = None) -> None:
        self._lines.append(ProgressLine(self.clock() if t is None else t, text, outcome))


def _label(nodeid: str) -> str:
    # Until a report names the kola test: the item, without its directory
    # and without the "@group" suffix of xdist's loadgroup.
    return nodeid.rsplit("/", 1)[-1].split("@", 1)[0]


def _apply(test: TestProgress, report: Any, props: dict[str, Any]) -> None:
    # The same verdicts as the result collector, one item at a time.
    if report.outcome == "skipped":
        if test.outcome in (None, "PASS"):
            test.outcome = "SKIP"
            test.message = _first_line(_skip_reason(report))
    elif report.outcome == "failed":
        if report.when == "call":
            if test.outcome in (None, "PASS"):
                test.outcome = "ERROR" if props.get(KEY_ERROR_KIND) == INFRA else "FAIL"
        elif test.outcome in (None, "PASS", "SKIP"):
            test.outcome = "ERROR"
        test.message = test.message or _first_line(_failure_message(report))
    elif report.when == "call" and test.outcome is None:
        test.outcome = "PASS"


def _first_line(text: str) -> str:
    text = text.strip()
    # "kolapy.errors.BootError: ..." reads as well as "BootError: ...", shorter.
    return _MODULE_PATH.sub("", text.splitlines()[0])[:200] if text else ""


_MODULE_PATH = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)+(?=[A-Z]\w*: )")
