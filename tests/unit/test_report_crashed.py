"""Tests dropped with a crashed xdist worker become ERROR records by kola name (fault 9)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kolapy.report.collector import ResultCollector
from kolapy.report.crashed import never_ran_report, plan_names
from kolapy.report.model import Result


def test_plan_names_by_node_id() -> None:
    key = pytest.StashKey[object]()
    a = SimpleNamespace(nodeid="t.py::a@kola-x-1", stash={key: SimpleNamespace(
        full_name="fault.a", parent="fault.a")})
    b = SimpleNamespace(nodeid="t.py::b", stash={})  # not a kola test: no plan
    assert plan_names([a, b], key) == {"t.py::a@kola-x-1": ["fault.a", "fault.a"]}  # type: ignore[list-item]


def test_never_ran_is_an_infra_error_naming_the_crash() -> None:
    collector = ResultCollector()
    collector.add(never_ran_report("t.py::a@g", {"t.py::a@g": ["fault.a", "fault.a"]}, ["gw1"]))
    collector.add(never_ran_report("t.py::b@g", {}, []))  # names unknown: the node id
    records = {r.name: r for r in collector.records()}
    assert set(records) == {"fault.a", "t.py::b@g"}
    a = records["fault.a"]
    assert a.result is Result.ERROR
    assert "never ran: it was queued on worker 'gw1', which crashed" in str(a)
    assert records["t.py::b@g"].result is Result.ERROR
