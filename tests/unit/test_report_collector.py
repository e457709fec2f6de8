"""ResultCollector: pytest reports (as xdist ships them) -> kola records."""

from __future__ import annotations

from typing import Any

import pytest

from kolapy.report.collector import (
    KEY_CONSOLE,
    KEY_DENIED,
    KEY_ERROR_KIND,
    KEY_JOURNAL,
    KEY_MACHINES,
    KEY_NAME,
    KEY_PARENT,
    KEY_WARN,
    KEY_WARN_ON_FAILURE,
    ResultCollector,
)
from kolapy.report.model import Result, worst


def report(
    when: str,
    outcome: str,
    props: list[tuple[str, Any]],
    longrepr: Any = None,
    nodeid: str = "suite.py::test_x",
    duration: float = 1.0,
) -> pytest.TestReport:
    rep = pytest.TestReport(
        nodeid,
        ("suite.py", 1, "test_x"),
        {},
        outcome,
        longrepr,
        when,
        duration=duration,
        user_properties=props,
    )
    # ship it the way pytest-xdist does: workers serialise, the controller rebuilds
    return pytest.TestReport._from_json(rep._to_json())


def run(
    c: ResultCollector,
    name: str,
    call: str = "passed",
    parent: str | None = None,
    extra: list[tuple[str, Any]] | None = None,
    longrepr: Any = None,
    setup: str = "passed",
    teardown: str = "passed",
    teardown_repr: Any = None,
) -> None:
    props = [(KEY_NAME, name), (KEY_PARENT, parent or name), *(extra or [])]
    nodeid = f"suite.py::{name}"
    c.add(report("setup", setup, props, longrepr if setup != "passed" else None, nodeid))
    if setup == "passed":
        c.add(report("call", call, props, longrepr, nodeid))
    c.add(report("teardown", teardown, props, teardown_repr, nodeid))


def test_pass_fail_with_slices() -> None:
    c = ResultCollector()
    extra = [(KEY_MACHINES, ["basic-1"]), (KEY_CONSOLE, "console text"), (KEY_JOURNAL, "journal")]
    run(c, "a", extra=extra)
    run(c, "b", call="failed", longrepr="CommandFailedError: command 'false' failed: exit code 1")
    a, b = c.records()
    assert (a.name, a.result, a.machines, a.console, a.journal) == (
        "a",
        Result.PASS,
        ["basic-1"],
        "console text",
        "journal",
    )
    assert a.duration_s == pytest.approx(3.0)
    assert b.result is Result.FAIL
    assert "exit code 1" in b.output


def test_setup_error_and_infra_error() -> None:
    c = ResultCollector()
    run(c, "boot", setup="failed", longrepr="BootError: no SSH in 300 s")
    run(
        c,
        "infra",
        call="failed",
        longrepr="TransportError: ssh died",
        extra=[(KEY_ERROR_KIND, "infra")],
    )
    boot, infra = c.records()
    assert boot.result is Result.ERROR and "no SSH" in boot.output
    assert infra.result is Result.ERROR


def test_skip_reason_and_denied() -> None:
    c = ResultCollector()
    run(c, "s", setup="skipped", longrepr=("suite.py", 3, "Skipped: needs /dev/kvm"))
    run(
        c,
        "d",
        setup="skipped",
        longrepr=("suite.py", 3, "Skipped: denylisted"),
        extra=[(KEY_DENIED, "denylisted: https://bugs/1")],
    )
    s, d = c.records()
    assert (s.result, s.reason) == (Result.SKIP, "needs /dev/kvm")
    assert (d.result, d.reason) == (Result.SKIP, "denylisted: https://bugs/1")


def test_warn_badness_and_warn_on_failure() -> None:
    c = ResultCollector()
    run(c, "w", extra=[(KEY_WARN, ["kernel soft lockup: watchdog: BUG: soft lockup - CPU#0"])])
    run(c, "f", call="failed", longrepr="boom", extra=[(KEY_WARN_ON_FAILURE, True)])
    run(
        c,
        "g",
        call="failed",
        longrepr="boom",
        extra=[(KEY_WARN, ["denylisted with warn: failure reported as WARN"])],
    )
    run(c, "h", call="failed", longrepr="boom", extra=[(KEY_WARN, ["kernel soft lockup: x"])])
    w, f, g, h = c.records()
    assert w.result is Result.WARN and "soft lockup" in w.output
    assert f.result is Result.WARN and "boom" in f.output
    assert g.result is Result.WARN
    assert h.result is Result.FAIL  # a warning does not hide a real failure


def test_teardown_failure_after_pass() -> None:
    c = ResultCollector()
    run(c, "t", teardown="failed", teardown_repr="console badness: kernel oops")
    (t,) = c.records()
    assert t.result is Result.FAIL
    assert "[teardown]" in t.output and "kernel oops" in t.output


def test_subtests_roll_up_into_parent() -> None:
    c = ResultCollector()
    run(c, "basic/ssh-port", parent="basic", extra=[(KEY_MACHINES, ["m1"])])
    run(c, "podman.base")
    run(
        c,
        "basic/dbus",
        parent="basic",
        call="failed",
        longrepr="AssertionError: dbus",
        extra=[(KEY_MACHINES, ["m1"])],
    )
    basic, podman = c.records()
    assert basic.name == "basic"
    assert basic.subtest_names == ["basic/ssh-port", "basic/dbus"]
    assert basic.result is Result.FAIL
    assert basic.duration_s == pytest.approx(6.0)
    assert basic.machines == ["m1"]
    assert "basic/dbus" in basic.output
    assert basic.subtests[0].parent == "basic"
    assert podman.subtests == []


def test_all_skipped_subtests_skip_the_parent() -> None:
    c = ResultCollector()
    run(c, "p/a", parent="p", setup="skipped", longrepr=("f", 1, "Skipped: why"))
    (p,) = c.records()
    assert (p.result, p.reason) == (Result.SKIP, "why")


def test_same_test_again_is_a_second_attempt() -> None:
    c = ResultCollector()
    run(c, "flaky", call="failed", longrepr="first")
    run(c, "flaky")
    first, second = c.records()
    assert (first.result, first.attempt, first.rerun_of) == (Result.FAIL, 1, None)
    assert (second.result, second.attempt, second.rerun_of) == (Result.PASS, 2, "flaky")


def test_worst_order() -> None:
    assert worst([Result.PASS, Result.WARN]) is Result.WARN
    assert worst([Result.FAIL, Result.ERROR]) is Result.ERROR
    assert worst([Result.SKIP, Result.PASS]) is Result.PASS
    assert worst([]) is Result.SKIP


def test_a_test_interrupted_after_setup_is_an_error_not_a_pass() -> None:
    # Ctrl-C during a test body: pytest reports its setup (and maybe a teardown), no call.
    c = ResultCollector()
    props = [(KEY_NAME, "iso.cut"), (KEY_PARENT, "iso.cut")]
    c.add(report("setup", "passed", props, nodeid="suite.py::cut", duration=0.4))
    c.add(report("teardown", "passed", props, nodeid="suite.py::cut"))
    run(c, "done")
    cut, done = c.records()
    assert cut.result is Result.ERROR
    assert "did not finish" in repr(cut)
    assert done.result is Result.PASS
