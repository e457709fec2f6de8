"""``<out>/reports/report.json`` in the shape of kola's harness JSON reporter.

``{"tests": [{"name", "subtests", "result", "duration", "output"}], "result",
"platform", "version"}`` -- duration in nanoseconds (Go's time.Duration), result
PASS/FAIL/SKIP/WARN (kolapy's ERROR is FAIL here), the top-level result FAIL if
any test failed.  As in kola every subtest also has an entry of its own.
kolapy adds ``machines`` per test (``restored_from`` for machines restored from a
saved one, ``cluster_members`` for the machines of a cluster: each one's member
index, address, config digest and ``ignition.json`` artifact; ``attempt`` for
reruns); kola tooling
ignores unknown keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kolapy.report.model import SubtestRecord, TestRecord, iter_all, overall_result


def _entry(rec: SubtestRecord) -> dict[str, Any]:
    subtests = rec.subtest_names if isinstance(rec, TestRecord) else []
    # a skip's reason, or the one-line message of a test that has no output of its own
    # (e.g. "did not finish: the run stopped during this test")
    output = rec.output or rec.reason or rec.message
    entry: dict[str, Any] = {
        "name": rec.name,
        "subtests": subtests,
        "result": rec.result.kola,
        "duration": round(rec.duration_s * 1e9),
        "output": output,
        "machines": list(rec.machines),
    }
    if rec.restored:
        entry["restored_from"] = dict(rec.restored)
    if rec.cluster_members:
        entry["cluster_members"] = {k: dict(v) for k, v in rec.cluster_members.items()}
    if rec.attempt > 1:
        entry["attempt"] = rec.attempt
    return entry


def report_dict(
    records: Sequence[TestRecord], platform: str = "qemu", version: str = ""
) -> dict[str, Any]:
    """The report.json document as a dict (subtest entries before their parent, as kola)."""
    tests = []
    for rec in records:
        tests += [_entry(s) for s in rec.subtests]
        tests.append(_entry(rec))
    return {
        "tests": tests,
        "result": overall_result(records),
        "platform": platform,
        "version": version,
    }


def write_report_json(
    out: Path, records: Sequence[TestRecord], properties: Mapping[str, Any] | None = None
) -> Path:
    """Write ``<out>/reports/report.json``; platform/version come from ``properties``."""
    props = properties or {}
    doc = report_dict(
        records,
        platform=str(props.get("platform", "qemu")),
        version=str(props.get("os_version") or props.get("version") or ""),
    )
    path = Path(out) / "reports" / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


__all__ = ["iter_all", "report_dict", "write_report_json"]
