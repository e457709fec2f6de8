"""Turn pytest reports into kola test records, on the controller.

Works under pytest-xdist: workers send their ``TestReport`` objects to the
controller, and everything kolapy needs travels in ``report.user_properties``
under the keys below (the plugin puts them there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kolapy.report.model import Result, SubtestRecord, TestRecord, worst

KEY_NAME = "kola_name"
"""Full kola name incl. subtest (``basic/ssh-port``)."""
KEY_PARENT = "kola_parent"
"""Kola name of the parent test (``basic``); equal to KEY_NAME for a plain test."""
KEY_MACHINES = "kola_machines"
KEY_RESTORED = "kola_restored"
"""{machine: the saved machine it was restored from}, for machines that did not boot."""
KEY_MEMBERS = "kola_cluster_members"
"""{machine: its place in the test's cluster and the config it booted with}
(:meth:`kolapy.machine.cluster.ClusterMember.to_report`), for cluster members."""
"""List of machine names the test used."""
KEY_CONSOLE = "kola_console"
"""The test's console slice (str)."""
KEY_JOURNAL = "kola_journal"
"""The test's journal slice (str)."""
KEY_ERROR_KIND = "kola_error_kind"
"""``"infra"`` when the failure was a :class:`kolapy.errors.InfraError`."""
KEY_WARN = "kola_warn"
"""List of warning strings (warn-level badness, denylist warn...)."""
KEY_DENIED = "kola_denied"
"""Why the denylist skipped the test (tracker string)."""
KEY_WARN_ON_FAILURE = "kola_warn_on_failure"
"""Truthy when a failure must be reported as WARN (denylist ``warn: true``)."""
KEY_ATTEMPT = "kola_attempt"
"""Optional attempt number (2 for a ``--rerun``); otherwise inferred."""
KEY_NOTE = "kola_note"
"""Text a test adds to its report output whatever its result (``record_property``)."""

DENY_WARN_PREFIX = "denylisted with warn"
"""A KEY_WARN entry starting with this also downgrades a failure to WARN."""

INFRA = "infra"


@dataclass
class _State:
    """What the phases of one item (one attempt) said so far."""

    name: str
    parent: str
    nodeid: str
    attempt: int
    result: Result | None = None
    duration_s: float = 0.0
    message: str = ""
    output: list[str] = field(default_factory=list)
    reason: str = ""
    props: dict[str, Any] = field(default_factory=dict)
    finished: bool = False


def _skip_reason(report: Any) -> str:
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(getattr(report, "longreprtext", "") or longrepr or "")
    text = text.removeprefix("Skipped: ")
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        text = f"xfail: {wasxfail}" if wasxfail else "xfail"
    return text


def _failure_message(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = getattr(crash, "message", "") if crash is not None else ""
    if not message:
        text = str(getattr(report, "longreprtext", "") or "")
        message = text.strip().splitlines()[-1] if text.strip() else ""
    return message


def _warn_downgrade(props: dict[str, Any]) -> bool:
    if props.get(KEY_WARN_ON_FAILURE):
        return True
    return any(str(w).startswith(DENY_WARN_PREFIX) for w in props.get(KEY_WARN) or ())


class ResultCollector:
    """Accumulates pytest reports; :meth:`records` gives kola test records."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, int], _State] = {}
        self._attempt: dict[str, int] = {}

    def add(self, report: Any) -> None:
        """Feed one pytest ``TestReport`` (setup, call or teardown phase)."""
        props = dict(report.user_properties)  # later entries win
        name = str(props.get(KEY_NAME) or report.nodeid)
        parent = str(props.get(KEY_PARENT) or name.split("/", 1)[0])
        attempt = self._attempt_for(name, report.when, props)
        state = self._states.get((name, attempt))
        if state is None:
            state = _State(name, parent, report.nodeid, attempt)
            self._states[(name, attempt)] = state
        state.props.update(props)
        state.duration_s += float(getattr(report, "duration", 0.0) or 0.0)
        self._apply(state, report, props)
        if report.when == "teardown":
            state.finished = True

    def _attempt_for(self, name: str, when: str, props: dict[str, Any]) -> int:
        if props.get(KEY_ATTEMPT):
            attempt = int(props[KEY_ATTEMPT])
        else:
            attempt = self._attempt.get(name, 1)
            current = self._states.get((name, attempt))
            if when == "setup" and current is not None and current.finished:
                attempt += 1  # the same test again: a rerun
        self._attempt[name] = attempt
        return attempt

    @staticmethod
    def _apply(state: _State, report: Any, props: dict[str, Any]) -> None:
        infra = props.get(KEY_ERROR_KIND) == INFRA
        if report.outcome == "skipped":
            if state.result is None or state.result is Result.PASS:
                state.result = Result.SKIP
                state.reason = str(props.get(KEY_DENIED) or _skip_reason(report))
            return
        if report.outcome == "failed":
            text = str(getattr(report, "longreprtext", "") or "")
            if report.when == "setup":
                state.result = Result.ERROR
            elif state.result in (None, Result.PASS):
                state.result = Result.ERROR if infra else Result.FAIL
            if not state.message:
                state.message = _failure_message(report)
            prefix = f"[{report.when}] " if report.when != "call" else ""
            state.output.append(prefix + text if prefix else text)
            return
        if state.result is None and report.when == "call":
            state.result = Result.PASS
        if report.when == "setup" and getattr(report, "wasxfail", None) is not None:
            state.result = Result.SKIP
            state.reason = _skip_reason(report)

    @staticmethod
    def _record(state: _State) -> SubtestRecord:
        props = state.props
        result = state.result
        if result is None:  # set up, but no call phase reported: the run stopped mid-test
            result = Result.ERROR
            state.message = state.message or "did not finish: the run stopped during this test"
        warnings = [str(w) for w in props.get(KEY_WARN) or ()]
        output = "\n".join(o for o in [*state.output, str(props.get(KEY_NOTE) or "")] if o)
        downgraded = result.failed and _warn_downgrade(props)
        if downgraded or (result is Result.PASS and warnings):
            result = Result.WARN
        if result is Result.WARN and not output:
            output = "\n".join(warnings)
        return SubtestRecord(
            name=state.name,
            result=result,
            duration_s=state.duration_s,
            output=output,
            message=state.message,
            reason=state.reason,
            machines=[str(m) for m in props.get(KEY_MACHINES) or ()],
            restored={str(k): str(v) for k, v in dict(props.get(KEY_RESTORED) or {}).items()},
            cluster_members={str(k): dict(v)
                             for k, v in dict(props.get(KEY_MEMBERS) or {}).items()},
            console=str(props.get(KEY_CONSOLE) or ""),
            journal=str(props.get(KEY_JOURNAL) or ""),
            warnings=warnings,
            attempt=state.attempt,
            rerun_of=state.name if state.attempt > 1 else None,
            nodeid=state.nodeid,
            parent="" if state.parent == state.name else state.parent,
        )

    def records(self) -> list[TestRecord]:
        """Top-level records in first-seen order; subtests grouped under their parent.

        A parent's result is the worst of its subtests (and of itself, if it ran
        as a test too); its duration the sum; its machines the union.
        """
        tops: dict[tuple[str, int], TestRecord] = {}
        own: set[tuple[str, int]] = set()  # parents that also ran as a test themselves
        for state in self._states.values():
            rec = self._record(state)
            key = (rec.parent or rec.name, rec.attempt)
            top = tops.get(key)
            if top is None:
                top = tops[key] = TestRecord(
                    name=key[0], attempt=rec.attempt, rerun_of=key[0] if rec.attempt > 1 else None
                )
                top.result = Result.SKIP  # until something real joins
            if rec.parent:
                top.subtests.append(rec)
            else:
                _take_own(top, rec)
                own.add(key)
        for key, top in tops.items():
            _roll_up(top, key in own)
        return list(tops.values())


def _take_own(top: TestRecord, rec: SubtestRecord) -> None:
    for name in (
        "result",
        "duration_s",
        "output",
        "message",
        "reason",
        "machines",
        "restored",
        "cluster_members",
        "console",
        "journal",
        "warnings",
        "nodeid",
    ):
        setattr(top, name, getattr(rec, name))


def _roll_up(top: TestRecord, own: bool) -> None:
    if not top.subtests:
        return
    subs = top.subtests
    results: Iterable[Result] = [s.result for s in subs] + ([top.result] if own else [])
    top.result = worst(results)
    top.duration_s = (top.duration_s if own else 0.0) + sum(s.duration_s for s in subs)
    machines = list(top.machines)
    for s in subs:
        machines += [m for m in s.machines if m not in machines]
    top.machines = machines
    for s in subs:
        top.restored.update(s.restored)
        top.cluster_members.update(s.cluster_members)
    if not own:
        # The parent ran nothing itself: its logs are its subtests' (the boot included).
        top.console = _joined(subs, "console")
        top.journal = _joined(subs, "journal")
        bad = [s for s in subs if s.result in (Result.FAIL, Result.ERROR, Result.WARN)]
        top.output = "\n".join(f"{s.name}: {s.result.value} {s.message}".rstrip() for s in bad)
        if bad:
            top.message = f"{bad[0].name}: {bad[0].message or bad[0].result.value}"
        if top.result is Result.SKIP:
            top.reason = next((s.reason for s in subs if s.reason), "")
        top.warnings = [w for s in subs for w in s.warnings]


def _joined(subs: list[SubtestRecord], attr: str) -> str:
    """The subtests' ``attr`` texts, each under a line naming its subtest."""
    return "\n".join(f"----- {s.name} -----\n{getattr(s, attr)}" for s in subs
                     if getattr(s, attr))
