"""The run's timeline: one lane per machine, built from the event log.

Each machine gets a lane of segments in seconds since the run started:
``waiting`` (for host memory), ``boot`` (or ``restore`` for a clone of a saved
machine), ``ready`` (up, between tests), ``test`` (one per test that ran on
it), ``stop`` and, for a boot that did not make it, ``failed``.  A lane whose
machine never stopped (an interrupted run) ends at the end of the timeline
with ``open`` set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kolapy.report.events import TEST_EVENT


@dataclass(frozen=True)
class Segment:
    """A stretch of one machine's life: ``start``/``end`` in seconds since the run began."""

    kind: str
    start: float
    end: float
    label: str
    test: str = ""
    """The kola test of a ``test`` segment (its entry in the report)."""
    result: str = ""
    """pytest's outcome of a ``test`` segment: passed, failed or skipped."""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Lane:
    """One machine of the run."""

    machine: str
    test: str
    """The kola test it was started for (``_templates`` for a saved machine)."""
    worker: str = ""
    restored_from: str = ""
    saved: bool = False
    """A machine booted once and saved, for clones to restore from."""
    error: str = ""
    open: bool = False
    """No ``stopped`` event: the run ended (or was cut) while it ran."""
    segments: list[Segment] = field(default_factory=list)

    @property
    def tests(self) -> list[str]:
        """The tests that ran on this machine, in order, each once."""
        seen: list[str] = []
        for s in self.segments:
            if s.kind == "test" and s.test not in seen:
                seen.append(s.test)
        return seen

    @property
    def shared(self) -> bool:
        """More than one test used this machine."""
        return len(self.tests) > 1


@dataclass
class Timeline:
    """All lanes of a run; ``start`` is the run's start (epoch seconds)."""

    start: float
    end: float
    lanes: list[Lane] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def run_events(events: Iterable[Mapping[str, Any]], since: float | None) -> list[dict[str, Any]]:
    """The events of one run, oldest first.

    Runs into the same output dir append to one log; ``since`` (the run's start)
    drops the earlier runs' events.  Without it (an older output dir),
    everything from the last ``booting`` of a machine name seen before and not
    running is kept: names are unique within a run.
    """
    ordered = sorted((dict(e) for e in events if _t(e) is not None), key=_t_key)
    if since is not None:
        return [e for e in ordered if _t_key(e) >= since - 1.0]
    return ordered[_last_run_start(ordered):]


def _last_run_start(events: list[dict[str, Any]]) -> int:
    running: set[str] = set()
    seen: set[str] = set()
    start = 0
    for i, e in enumerate(events):
        kind, machine = e.get("event"), str(e.get("machine", ""))
        if kind == "booting" and machine in seen and machine not in running:
            start = i  # a name boots again: a later run into the same dir
            running.clear()
            seen.clear()
        if kind in ("booting", "waiting", "ready"):
            running.add(machine)
            seen.add(machine)
        elif kind == "stopped":
            running.discard(machine)
    return start


def build_timeline(
    events: Iterable[Mapping[str, Any]], start: float | None = None, end: float | None = None
) -> Timeline:
    """Lanes from one run's events (see :func:`run_events`); open segments end at ``end``."""
    evs = sorted((dict(e) for e in events if _t(e) is not None), key=_t_key)
    times = [t for e in evs for t in _times(e)]
    t0 = start if start is not None else min(times, default=0.0)
    t1 = max([*times, t0] + ([end] if end is not None else []))
    lanes: dict[str, _LaneBuilder] = {}
    for e in evs:
        if e.get("event") == TEST_EVENT:
            for name in e.get("machines") or [e.get("machine", "")]:
                if name:
                    lanes.setdefault(str(name), _LaneBuilder(str(name), e)).test_ran(e)
            continue
        name = str(e.get("machine", ""))
        if name:
            lanes.setdefault(name, _LaneBuilder(name, e)).apply(e)
    return Timeline(t0, t1, [b.finish(t0, t1) for b in lanes.values()])


class _LaneBuilder:
    def __init__(self, name: str, first: Mapping[str, Any]) -> None:
        self.lane = Lane(name, str(first.get("test", "")), str(first.get("worker", "")))
        self.raw: list[tuple[str, float, float, str, str, str]] = []
        self.state: str | None = None
        self.since = _t_key(first)
        self.stopped: float | None = None
        self.label = ""

    def _close(self, t: float) -> None:
        if self.state is not None:
            self.raw.append((self.state, self.since, t, self.label, "", ""))
        self.state, self.since, self.label = None, t, ""

    def _open(self, state: str, t: float, label: str) -> None:
        self._close(t)
        self.state, self.since, self.label = state, t, label

    def apply(self, e: Mapping[str, Any]) -> None:
        kind, t = str(e.get("event", "")), _t_key(e)
        if e.get("restored_from"):
            self.lane.restored_from = str(e["restored_from"])
        if e.get("test") and not self.lane.test:
            self.lane.test = str(e["test"])
        if kind == "waiting":
            need = e.get("need_mib")
            self._open("waiting", t, f"waiting for {need} MiB of host memory" if need else
                       "waiting for host memory")
        elif kind == "booting":
            kind_name = "restore" if self.lane.restored_from else "boot"
            verb = f"restoring from {self.lane.restored_from}" if self.lane.restored_from \
                else "booting"
            if self.state not in ("boot", "restore"):
                self._open(kind_name, t, verb)
        elif kind == "ready":
            self._open("ready", t, "ready")
        elif kind == "failed":
            self.lane.error = str(e.get("error", ""))
            if self.state in ("boot", "restore", "waiting"):
                self.state = "failed"
                self.label = f"failed: {self.lane.error}" if self.lane.error else "failed"
            self._close(t)
        elif kind == "stopping":
            self._open("stop", t, "stopping")
        elif kind == "stopped":
            if e.get("saved"):
                self.lane.saved = True
            self._close(t)
            self.stopped = t

    def test_ran(self, e: Mapping[str, Any]) -> None:
        t_start = float(e.get("start") or _t_key(e))
        t_stop = float(e.get("stop") or _t_key(e))
        name = str(e.get("test", ""))
        self.raw.append(("test", t_start, t_stop, name, name, str(e.get("outcome", ""))))

    def finish(self, t0: float, t1: float) -> Lane:
        if self.stopped is None:
            self.lane.open = True
            self._close(t1)
        segments = [
            Segment(kind, round(a - t0, 3), round(max(a, b) - t0, 3), label, test, result)
            for kind, a, b, label, test, result in self.raw
        ]
        # tests draw over the machine's ready stretch: put them last
        segments.sort(key=lambda s: (s.kind == "test", s.start))
        self.lane.segments = segments
        return self.lane


def _t(e: Mapping[str, Any]) -> float | None:
    try:
        return float(e["t"])
    except (KeyError, TypeError, ValueError):
        return None


def _t_key(e: Mapping[str, Any]) -> float:
    # a test event's place in time is when it started
    if e.get("event") == TEST_EVENT and e.get("start") is not None:
        return float(e["start"])
    return _t(e) or 0.0


def _times(e: Mapping[str, Any]) -> list[float]:
    times = [_t(e) or 0.0]
    times += [float(e[k]) for k in ("start", "stop") if e.get(k) is not None]
    return times
