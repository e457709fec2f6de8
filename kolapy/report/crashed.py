"""Tests an xdist worker took down with it: reported as infrastructure errors, by kola name.

xdist does not replace a crashed worker under kolapy (pytest-xdist#1323), so the tests
queued on it never run.  The controller never collects, so it knows them only by node
id; each worker therefore sends its plan's kola names once, on its first report
(:data:`KEY_PLAN_NAMES`), and the controller turns every test that never ran into an
``ERROR`` record naming the crash.
"""

from __future__ import annotations

from typing import Any

import pytest

from kolapy.report.collector import INFRA, KEY_ERROR_KIND, KEY_NAME, KEY_PARENT

KEY_PLAN_NAMES = "kola_plan_names"
"""{node id: [kola name, parent name]} for every test a worker collected."""


def plan_names(items: list[pytest.Item], plan_key: Any) -> dict[str, list[str]]:
    """The kola name and parent of each planned item, by (xdist) node id."""
    names: dict[str, list[str]] = {}
    for item in items:
        plan = item.stash.get(plan_key, None)
        if plan is not None:
            names[item.nodeid] = [plan.full_name, plan.parent]
    return names


def never_ran_report(nodeid: str, names: dict[str, list[str]],
                     workers: list[str]) -> pytest.TestReport:
    """A setup-phase ERROR for ``nodeid``, which a crashed worker dropped."""
    name, parent = names.get(nodeid) or [nodeid, nodeid]
    crashed = ", ".join(repr(w) for w in workers) or "an xdist worker"
    fspath = nodeid.split("::")[0]
    return pytest.TestReport(
        nodeid=nodeid, location=(fspath, None, fspath), keywords={}, outcome="failed",
        longrepr=f"never ran: it was queued on worker {crashed}, which crashed",
        when="setup",
        user_properties=[(KEY_NAME, name), (KEY_PARENT, parent), (KEY_ERROR_KIND, INFRA)],
    )
