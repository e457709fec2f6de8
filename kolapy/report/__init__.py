"""Reports: output dir layout, JUnit, kola's report.json, TAP, properties, HTML, summary.

``write_all(out, records, properties)`` writes every file report at once::

    <out>/reports/junit.xml  <out>/reports/report.json  <out>/reports/report.html
    <out>/test.tap  <out>/properties.json
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kolapy.report.model import Result, SubtestRecord, TestRecord


def write_all(out: Path, records: Sequence[TestRecord], properties: Mapping[str, Any]) -> None:
    """Write junit.xml, report.json, test.tap, properties.json and report.html under ``out``."""
    from kolapy.report.html import write_html
    from kolapy.report.junit import write_junit
    from kolapy.report.kola_json import write_report_json
    from kolapy.report.properties import write_properties
    from kolapy.report.tap import write_tap

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_junit(out, records)
    write_report_json(out, records, properties)
    write_tap(out, records)
    write_properties(out, properties)
    write_html(out, records, properties)  # last: it reads the event log the run left


__all__ = ["Result", "SubtestRecord", "TestRecord", "write_all"]
