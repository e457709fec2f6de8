"""The live view of a run: a rich display on a terminal, plain event lines elsewhere.

``--kola-live=auto`` (the default of ``kolapy run``) picks a rich live display
when stdout is a terminal and plain timestamped lines otherwise (CI logs)::

    [  12.3s] machine gw0-1 booting for basic
    [ 160.2s] machine gw0-1 ready (148 s)
    [ 170.0s] PASS basic/ssh-port (1.2 s)

The view replaces pytest's per-test progress (the dots), which would garble
it; pytest's header, failure details and final summary are unchanged.  It runs
on the controller only: test results come from pytest's reports, machine
events from the run's event log (:mod:`kolapy.report.events`), which a
background thread reads a few times a second.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

import pytest

from kolapy.report.events import EventTail, events_path
from kolapy.report.progress import ProgressLine, RunProgress, clock_time, seconds

MODES = ("auto", "rich", "plain", "off")
STYLES = {
    "PASS": "green",
    "FAIL": "bold red",
    "ERROR": "bold magenta",
    "SKIP": "blue",
    "WARN": "yellow",
}
MAX_ROWS = 8
"""Machines and running tests listed at most (the rest is counted)."""


def choose_mode(requested: str, stream: IO[str], env: dict[str, str] | None = None) -> str:
    """``rich``, ``plain`` or ``off`` for a requested mode and an output stream.

    ``auto`` is rich only on a terminal that can move its cursor (not
    ``TERM=dumb``).  ``NO_COLOR`` keeps the rich view but without colours
    (rich honours it).
    """
    if requested not in MODES:
        raise ValueError(f"unknown live mode {requested!r} (choose {', '.join(MODES)})")
    if requested != "auto":
        return requested
    env = dict(os.environ) if env is None else env
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "rich" if tty and env.get("TERM", "") != "dumb" else "plain"


def format_line(line: ProgressLine, start: float) -> str:
    """``[  12.3s] text``: seconds since the run started, no escape codes."""
    return f"[{line.t - start:6.1f}s] {line.text}"


class PlainRenderer:
    """One timestamped line per event; nothing else (safe for any log)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def start(self, progress: RunProgress) -> None:
        pass

    def update(self, progress: RunProgress, lines: list[ProgressLine]) -> None:
        if lines:
            self.stream.write("".join(format_line(x, progress.start) + "\n" for x in lines))
            self.stream.flush()

    def stop(self, progress: RunProgress) -> None:
        self.stream.write(f"kolapy: {progress.summary()}\n")
        self.stream.flush()


def render_rich(progress: RunProgress, now: float | None = None) -> Any:
    """The live display: a status line, active machines, running and recent tests."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = progress.clock() if now is None else now
    with progress.lock:
        total = progress.total
        done = progress.done
        head = Text()
        head.append("kolapy ", style="bold")
        head.append(clock_time(progress.elapsed(now)))
        head.append(f"  tests {done}/{total if total is not None else '?'}")
        head.append(f", {len(progress.running)} running")
        for outcome, style in STYLES.items():
            if progress.counts[outcome]:
                head.append(f"  {progress.counts[outcome]} {outcome}", style=style)
        parts: list[Any] = [head]

        machines = [m for m in progress.machines.values() if m.state != "stopped"]
        if machines:
            table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
            for m in machines[:MAX_ROWS]:
                if m.state == "waiting":
                    state = Text(f"waiting for memory {clock_time(now - m.since)}", style="yellow")
                elif m.state == "booting":
                    state = Text(f"booting {clock_time(now - m.since)}", style="cyan")
                elif m.state == "ready":
                    state = Text(f"ready (boot {seconds(m.boot_s or 0)})", style="green")
                    if m.step:
                        state.append(f"  {m.step}", style="default")
                else:
                    state = Text(f"failed: {m.error}", style="bold red")
                table.add_row(Text("machine", style="dim"), m.name, m.test, state)
            parts.append(table)
            if len(machines) > MAX_ROWS:
                parts.append(Text(f"  ... {len(machines) - MAX_ROWS} more machines", style="dim"))

        running = list(progress.running.values())
        if running:
            table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
            for t in running[:MAX_ROWS]:
                table.add_row(Text("running", style="dim"), t.label, clock_time(now - t.started))
            parts.append(table)
            if len(running) > MAX_ROWS:
                parts.append(Text(f"  ... {len(running) - MAX_ROWS} more tests", style="dim"))

        for t in progress.recent:
            line = Text()
            line.append(f"{t.outcome:<5}", style=STYLES.get(t.outcome or "", ""))
            line.append(f" {t.label} ({seconds(t.duration_s)})")
            if t.message:
                line.append(f": {t.message}", style="dim")
            line.no_wrap, line.overflow = True, "ellipsis"
            parts.append(line)
    return Group(*parts)


class RichRenderer:
    """A rich ``Live`` display, redrawn on every tick; gone when the run ends."""

    def __init__(self, stream: IO[str], force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        try:  # measured now: while pytest captures, fd 1 and 2 are not the terminal
            width: int | None = os.get_terminal_size(stream.fileno()).columns or None
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            width = None  # rich decides (COLUMNS, then 80)
        self.console = Console(file=stream, force_terminal=force_terminal, width=width)
        # No stdout/stderr redirection: pytest owns those (and captures them).
        self.live = Live(
            console=self.console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self, progress: RunProgress) -> None:
        self.live.start()

    def update(self, progress: RunProgress, lines: list[ProgressLine]) -> None:
        self.live.update(render_rich(progress), refresh=True)

    def stop(self, progress: RunProgress) -> None:
        self.live.stop()
        self.console.print(f"kolapy: {progress.summary()}", highlight=False)


class LiveView:
    """The pytest plugin (controller only) that drives a renderer from a progress model.

    Register it with :func:`live_view`.  Nothing is drawn before the first
    test starts, so pytest's header and collection lines come out first.
    """

    TICK = {"rich": 0.25, "plain": 0.5}

    def __init__(
        self,
        mode: str,
        events_file: Path,
        stream: IO[str],
        pytest_stream: IO[str] | None = None,
        progress: RunProgress | None = None,
    ) -> None:
        self.mode = mode
        self.progress = progress or RunProgress()
        self.tail = EventTail(events_file)
        self.stream = stream
        self._own_stream = stream is not sys.stdout
        self._pytest_stream = pytest_stream
        self.renderer: PlainRenderer | RichRenderer = (
            RichRenderer(stream, force_terminal=True) if mode == "rich" else PlainRenderer(stream)
        )
        self._started = False
        self._stopped = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._draw = threading.Lock()

    # -- pytest hooks --------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.showfspath = False  # no "file.py " prefix waiting for the dots we drop

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.progress.set_total(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.progress.set_total(len(ids))

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.progress.test_started(nodeid)
        self.begin()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.progress.test_report(report)

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report: Any) -> Generator[None, Any, Any]:
        # Keep pytest's category (its counts and summary) but drop the letter
        # and word it would print for each test: the view shows tests itself.
        # Only while drawing: the final summary asks again for its words.
        status = yield
        return (status[0], "", "") if status and not self._stopped else status

    @pytest.hookimpl(tryfirst=True)  # before the summary table is written
    def pytest_sessionfinish(self) -> None:
        self.end()

    def pytest_unconfigure(self) -> None:
        self.end()
        if self._own_stream and not self.stream.closed:
            self.stream.close()

    # -- drawing -------------------------------------------------------------
    def begin(self) -> None:
        """Start drawing (once): flush pytest's own output first, then tick."""
        if self._started or self._stopped:
            return
        self._started = True
        self._flush_pytest()
        self.renderer.start(self.progress)
        self.tick()
        self._thread = threading.Thread(target=self._loop, name="kolapy-live", daemon=True)
        self._thread.start()

    def tick(self) -> None:
        """Read new machine events and redraw (or print new lines)."""
        with self._draw:
            if self._stopped:
                return
            for event in self.tail.read():
                self.progress.machine_event(event)
            self.renderer.update(self.progress, self.progress.take_lines())

    def end(self) -> None:
        """Final tick, stop drawing, print the closing line (idempotent)."""
        if self._stopped:
            return
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._started:
            self.tick()
            with self._draw:
                self._stopped = True
                self.renderer.stop(self.progress)
        self._stopped = True

    def _loop(self) -> None:
        while not self._halt.wait(self.TICK.get(self.mode, 0.5)):
            try:
                self.tick()
            except Exception:  # a drawing problem must never break the run
                continue

    def _flush_pytest(self) -> None:
        # pytest's stream may be block-buffered (a pipe): its lines go first.
        if self._pytest_stream is not None:
            with contextlib.suppress(OSError, ValueError):
                self._pytest_stream.flush()


def live_view(config: pytest.Config, session: Any) -> LiveView | None:
    """The live view the options ask for (``--kola-live``), or None.

    ``session`` is the run's :class:`~kolapy.session.KolaSession` (for its
    output dir, where the event log is).
    Off with pytest's ``-v``: the user asked for pytest's own per-test lines.
    """
    requested = config.getoption("kola_live", None) or "off"
    if requested == "off" or config.get_verbosity() > 0:
        return None
    stream = terminal_stream()
    mode = choose_mode(requested, stream)
    if mode == "off":
        return None
    return LiveView(mode, events_path(session.output_dir), stream, pytest_stream=sys.stdout)


def terminal_stream() -> IO[str]:
    """A private handle on the current stdout.

    pytest redirects file descriptor 1 while a test runs (output capture); a
    duplicate taken now still reaches the terminal (or CI log) then.
    """
    try:
        fd = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return sys.stdout
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return open(fd, "w", buffering=1, encoding=encoding, errors="replace")


OPTION = (
    "--kola-live",
    dict(
        dest="kola_live",
        choices=list(MODES),
        nargs="?",
        const="auto",
        default=None,
        help="kolapy's progress view instead of pytest's dots: rich on a terminal, plain "
        "timestamped lines otherwise (auto, the default of `kolapy run`), or off",
    ),
)
"""The pytest option (``--kola-live`` alone means ``auto``)."""
