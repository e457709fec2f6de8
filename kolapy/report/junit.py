"""``<out>/reports/junit.xml``: one testcase per kola test and per subtest.

Each testcase carries the test's own console slice in ``system-out`` and its
journal slice in ``system-err`` (what kola users' CI does when converting); the
first testcase that used a machine also carries the machine's boot, and a parent
test its subtests' slices (:mod:`kolapy.report.bootlog`).
FAIL is ``<failure>``, ERROR (infrastructure) is ``<error>``, SKIP is
``<skipped>`` with the reason; every testcase has properties ``kola.result``
(so WARN is visible), ``kola.machines`` and, for reruns, ``kola.attempt``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from kolapy.report.model import Result, SubtestRecord, TestRecord, iter_all

CLASSNAME = "kola"


def _case(rec: SubtestRecord) -> TestCase:
    case = TestCase(
        rec.name,
        classname=CLASSNAME,
        elapsed_sec=rec.duration_s,
        stdout=rec.console or None,
        stderr=rec.journal or None,
    )
    message = rec.message or (rec.output.strip().splitlines() or [""])[0]
    if rec.result is Result.FAIL:
        case.add_failure_info(message=message or "failed", output=rec.output or None)
    elif rec.result is Result.ERROR:
        case.add_error_info(message=message or "infrastructure error", output=rec.output or None)
    elif rec.result is Result.SKIP:
        case.add_skipped_info(message=rec.reason or "skipped")
    return case


def _properties(rec: SubtestRecord) -> list[tuple[str, str]]:
    props = [("kola.result", rec.result.value)]
    if rec.machines:
        props.append(("kola.machines", " ".join(rec.machines)))
    props += [("kola.restored", f"{m} from {t}") for m, t in rec.restored.items()]
    if rec.attempt > 1:
        props.append(("kola.attempt", str(rec.attempt)))
    props += [("kola.warning", w) for w in rec.warnings]
    return props


def junit_xml_text(records: Sequence[TestRecord], suite_name: str = "kola") -> str:
    """The JUnit XML document for ``records`` as a string."""
    units = list(iter_all(records))
    suite = TestSuite(suite_name, [_case(r) for r in units])
    root = ET.fromstring(to_xml_report_string([suite], prettyprint=False, encoding="utf-8"))
    # junit-xml has no per-testcase properties: add them to the parsed tree
    for element, rec in zip(root.iter("testcase"), units, strict=True):
        props = ET.Element("properties")
        for name, value in _properties(rec):
            ET.SubElement(props, "property", name=name, value=value)
        element.insert(0, props)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def write_junit(out: Path, records: Sequence[TestRecord]) -> Path:
    """Write ``<out>/reports/junit.xml``; return its path."""
    path = Path(out) / "reports" / "junit.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml_text(records) + "\n", encoding="utf-8")
    return path
