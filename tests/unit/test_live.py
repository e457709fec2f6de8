"""The live view: event log, progress model, plain and rich renderers, mode choice."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kolapy.report.collector import KEY_ERROR_KIND, KEY_NAME, KEY_WARN
from kolapy.report.events import EventTail, emit, events_path
from kolapy.report.live import LiveView, PlainRenderer, choose_mode, format_line, render_rich
from kolapy.report.progress import RunProgress

ANSI = re.compile(r"\x1b\[")
T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def report(
    nodeid: str,
    when: str,
    outcome: str = "passed",
    props: list[tuple[str, Any]] | None = None,
    longrepr: Any = None,
    duration: float = 0.5,
) -> pytest.TestReport:
    rep = pytest.TestReport(
        nodeid,
        ("t.py", 1, "x"),
        {},
        outcome,
        longrepr,
        when,
        duration=duration,
        user_properties=props or [],
    )
    return pytest.TestReport._from_json(rep._to_json())  # as xdist ships it


def run_item(p: RunProgress, nodeid: str, name: str, call: str = "passed", **kw: Any) -> None:
    props = [(KEY_NAME, name), *kw.pop("props", [])]
    p.test_started(nodeid)
    p.test_report(report(nodeid, "setup", "passed", props))
    p.test_report(report(nodeid, "call", call, props, kw.pop("longrepr", None)))
    p.test_report(report(nodeid, "teardown", "passed", props))


# -- event log ---------------------------------------------------------------
def test_events_append_and_tail_reads_only_new_complete_lines(tmp_path: Path) -> None:
    emit(tmp_path, "booting", "old-1", test="basic", worker="gw0")  # an earlier run
    tail = EventTail(events_path(tmp_path))
    assert tail.read() == []
    emit(tmp_path, "booting", "gw0-1", test="basic", worker="gw0")
    emit(tmp_path, "failed", "gw0-1", test="basic", worker="gw0", error=RuntimeError("no ssh\nx"))
    with open(events_path(tmp_path), "a") as f:
        f.write("not json\n")
        f.write('{"event": "ready", "machine": "gw1')  # being written right now
    got = tail.read()
    assert [(e["event"], e["machine"]) for e in got] == [("booting", "gw0-1"), ("failed", "gw0-1")]
    assert got[1]["error"] == "no ssh"  # one line
    with open(events_path(tmp_path), "a") as f:
        f.write('-2", "t": 5}\n')
    assert tail.read() == [{"event": "ready", "machine": "gw1-2", "t": 5}]
    assert EventTail(tmp_path / "missing.jsonl").read() == []


def test_emit_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    emit(blocker / "sub", "booting", "m")  # parent is a file: logged, not raised


# -- progress model ---------------------------------------------------------
def test_machine_events_make_lines_with_boot_time() -> None:
    clock = Clock()
    p = RunProgress(clock=clock)
    p.machine_event({"t": T0 + 12.3, "event": "booting", "machine": "gw0-1", "test": "basic"})
    assert [m.state for m in p.active_machines()] == ["booting"]
    p.machine_event({"t": T0 + 160.2, "event": "ready", "machine": "gw0-1"})
    p.machine_event({"t": T0 + 170, "event": "booting", "machine": "gw1-1", "test": "x"})
    p.machine_event({"t": T0 + 200, "event": "failed", "machine": "gw1-1", "error": "no SSH"})
    p.machine_event({"t": T0 + 201, "event": "stopped", "machine": "gw0-1"})
    lines = [format_line(x, p.start) for x in p.take_lines()]
    assert lines == [
        "[  12.3s] machine gw0-1 booting for basic",
        "[ 160.2s] machine gw0-1 ready (148 s)",
        "[ 170.0s] machine gw1-1 booting for x",
        "[ 200.0s] machine gw1-1 failed to boot after 30 s: no SSH",
        "[ 201.0s] machine gw0-1 stopped",
    ]
    assert p.take_lines() == []
    assert [m.name for m in p.active_machines()] == ["gw1-1"]


def test_step_events_show_a_long_tests_phases(tmp_path: Path) -> None:
    from kolapy.report.events import emit_step, read_events

    emit_step(tmp_path, "k8s.bootstrap", "init-cluster done after 412 s", "gw0-1", "gw0")
    (event,) = read_events(events_path(tmp_path))
    assert event["event"] == "step" and event["text"] == "init-cluster done after 412 s"
    p = RunProgress(clock=Clock())
    p.machine_event({"t": T0 + 1, "event": "booting", "machine": "gw0-1", "test": "k8s.bootstrap"})
    p.machine_event({"t": T0 + 100, "event": "ready", "machine": "gw0-1"})
    p.machine_event({**event, "t": T0 + 512})
    p.machine_event({"t": T0 + 600, "event": "step", "machine": "", "test": "x",
                     "text": "no machine"})
    lines = [format_line(x, p.start) for x in p.take_lines()]
    assert lines[-2:] == ["[ 512.0s] k8s.bootstrap on gw0-1: init-cluster done after 412 s",
                          "[ 600.0s] x: no machine"]
    buf = io.StringIO()
    Console(file=buf, width=120).print(render_rich(p, now=T0 + 700))
    assert re.search(r"gw0-1\s+k8s\.bootstrap\s+ready \(boot 99 s\)\s+init-cluster done",
                     buf.getvalue())


def test_test_outcomes_counts_and_labels() -> None:
    clock = Clock()
    p = RunProgress(clock=clock)
    p.set_total(5)
    p.test_started("suites/basic.py::test_ssh@kola-basic-1")
    assert [t.label for t in p.running.values()] == ["basic.py::test_ssh"]
    run_item(p, "suites/basic.py::test_ssh@kola-basic-1", "basic/ssh-port")
    run_item(p, "b::f", "b/fails", "failed", longrepr="assert 1 == 2")
    run_item(p, "b::i", "b/infra", "failed", props=[(KEY_ERROR_KIND, "infra")], longrepr="x")
    run_item(p, "b::w", "b/warn", props=[(KEY_WARN, ["soft lockup"])])
    p.test_started("b::s")
    p.test_report(
        report(
            "b::s", "setup", "skipped", [(KEY_NAME, "b/skip")], ("t.py", 1, "Skipped: needs a tag")
        )
    )
    p.test_report(report("b::s", "teardown", "passed", [(KEY_NAME, "b/skip")]))
    texts = [x.text for x in p.take_lines()]
    assert texts[0] == "5 tests to run"
    assert texts[1] == "PASS basic/ssh-port (1.5 s)"
    assert texts[2].startswith("FAIL b/fails (1.5 s): assert 1 == 2")
    assert texts[3].startswith("ERROR b/infra")
    assert texts[4] == "WARN b/warn (1.5 s)"
    assert texts[5] == "SKIP b/skip (1.0 s): needs a tag"
    assert p.done == 5 and not p.running
    assert dict(p.counts) == {"PASS": 1, "FAIL": 1, "ERROR": 1, "WARN": 1, "SKIP": 1}


def test_setup_error_is_error_and_module_path_is_dropped() -> None:
    p = RunProgress(clock=Clock())
    err = "kolapy.errors.BootError: no SSH after 600 s"
    p.test_report(report("a::b", "setup", "failed", [(KEY_NAME, "a")], err))
    p.test_report(report("a::b", "teardown", "passed", [(KEY_NAME, "a")]))
    (line,) = p.take_lines()
    assert line.outcome == "ERROR"
    assert line.text == "ERROR a (1.0 s): BootError: no SSH after 600 s"


def test_summary_line() -> None:
    clock = Clock()
    p = RunProgress(clock=clock)
    p.machine_event({"t": T0, "event": "booting", "machine": "m1"})
    p.machine_event({"t": T0 + 100, "event": "ready", "machine": "m1"})
    p.machine_event({"t": T0 + 10, "event": "booting", "machine": "m2"})
    p.machine_event({"t": T0 + 210, "event": "ready", "machine": "m2"})
    run_item(p, "a::b", "a")
    clock.now = T0 + 187
    assert p.summary() == (
        "ran 1 test and subtests in 3m07s: 1 PASS; 2 machines (boot mean 150 s, max 200 s)"
    )


# -- renderers ----------------------------------------------------------------
def _busy_progress(clock: Clock) -> RunProgress:
    p = RunProgress(clock=clock)
    p.set_total(3)
    p.machine_event({"t": T0 + 1, "event": "booting", "machine": "gw0-1", "test": "basic"})
    p.machine_event({"t": T0 + 2, "event": "booting", "machine": "gw1-1", "test": "podman.base"})
    p.machine_event({"t": T0 + 150, "event": "ready", "machine": "gw1-1"})
    p.test_started("suites/basic.py::test_ssh_port")
    run_item(p, "p::x", "podman.base", "failed", longrepr="boom")
    clock.now = T0 + 160
    return p


def test_plain_renderer_writes_timestamped_lines_without_ansi() -> None:
    clock = Clock()
    p = _busy_progress(clock)
    out = io.StringIO()
    r = PlainRenderer(out)
    r.start(p)
    r.update(p, p.take_lines())
    r.stop(p)
    text = out.getvalue()
    assert not ANSI.search(text)
    assert "[   1.0s] machine gw0-1 booting for basic\n" in text
    assert "[ 150.0s] machine gw1-1 ready (148 s)\n" in text
    assert re.search(r"^\[ *\d+\.\ds\] FAIL podman\.base \(1\.5 s\): boom$", text, re.M)
    assert text.splitlines()[-1].startswith("kolapy: ran 1 test and subtests in 2m40s: 1 FAIL")


def test_rich_view_shows_machines_running_and_recent_tests() -> None:
    clock = Clock()
    p = _busy_progress(clock)
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, width=120).print(render_rich(p))
    raw = buf.getvalue()
    assert ANSI.search(raw)  # styled on a terminal
    text = re.sub(r"\x1b\[[0-9;]*m", "", raw)
    assert "tests 1/3, 1 running" in text and "1 FAIL" in text
    assert re.search(r"machine\s+gw0-1\s+basic\s+booting 2m39s", text)
    assert re.search(r"machine\s+gw1-1\s+podman\.base\s+ready \(boot 148 s\)", text)
    assert re.search(r"running\s+basic\.py::test_ssh_port", text)
    assert "FAIL  podman.base (1.5 s): boom" in text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("requested", "tty", "env", "expected"),
    [
        ("auto", True, {"TERM": "xterm"}, "rich"),
        ("auto", True, {"TERM": "xterm", "NO_COLOR": "1"}, "rich"),
        ("auto", True, {"TERM": "dumb"}, "plain"),
        ("auto", False, {"TERM": "xterm"}, "plain"),
        ("plain", True, {}, "plain"),
        ("off", True, {}, "off"),
        ("rich", False, {}, "rich"),
    ],
)
def test_choose_mode(requested: str, tty: bool, env: dict[str, str], expected: str) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert choose_mode(requested, stream, env) == expected


def test_choose_mode_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="fancy"):
        choose_mode("fancy", io.StringIO(), {})


def test_live_view_tails_worker_events_and_ends_once(tmp_path: Path) -> None:
    out = io.StringIO()
    view = LiveView("plain", events_path(tmp_path), out)
    view.begin()
    emit(tmp_path, "booting", "gw0-1", test="basic", worker="gw0")
    view.tick()
    assert "machine gw0-1 booting for basic" in out.getvalue()
    view.progress.test_report(report("a::b", "setup", "passed", [(KEY_NAME, "basic")]))
    view.progress.test_report(report("a::b", "call", "passed", [(KEY_NAME, "basic")]))
    view.progress.test_report(report("a::b", "teardown", "passed", [(KEY_NAME, "basic")]))
    view.end()
    view.end()
    lines = out.getvalue().splitlines()
    assert re.match(r"\[ *\d+\.\ds\] PASS basic \(1\.5 s\)$", lines[-2])
    assert lines[-1].startswith("kolapy: ran 1 test") and lines[-1].count("kolapy:") == 1
    assert not ANSI.search(out.getvalue())


def test_kolapy_run_asks_for_the_live_view(tmp_path: Path) -> None:
    from kolapy.runner import pytest_args

    ns = argparse.Namespace(tests=[], parallel=1, kola_keep_failed=False, live="plain")
    args = pytest_args(ns, [], tmp_path / "img", tmp_path / "out", ["basic"])
    assert "--kola-live=plain" in args
    del ns.live  # a namespace built elsewhere (older callers): auto
    assert "--kola-live=auto" in pytest_args(ns, [], tmp_path / "img", tmp_path / "out", [])
