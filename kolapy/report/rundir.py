"""Read a run back from its output directory (for ``kolapy report DIR``).

The records come from ``reports/junit.xml`` (results incl. ERROR and WARN,
messages, log slices, machines, warnings) completed by ``reports/report.json``
(outputs junit has no place for); ``properties.json`` and ``events.jsonl``
are read as they are.  A run cut before any test finished has no reports:
it still has its event log.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolapy.errors import BadInputError
from kolapy.report.events import events_path, read_events
from kolapy.report.model import Result, SubtestRecord, TestRecord

JUNIT = Path("reports/junit.xml")
REPORT_JSON = Path("reports/report.json")
PROPERTIES = Path("properties.json")


@dataclass
class RunDir:
    """What an output directory holds about its run."""

    path: Path
    records: list[TestRecord] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def is_output_dir(path: Path) -> bool:
    """Whether ``path`` looks like a kolapy output dir (reports, properties or events)."""
    path = Path(path)
    return any((path / p).is_file() for p in (JUNIT, REPORT_JSON, PROPERTIES)) or events_path(
        path
    ).is_file()


def load_run(path: Path) -> RunDir:
    """Everything the files of ``path`` say; BadInputError when it is no output dir."""
    path = Path(path)
    if not path.is_dir():
        raise BadInputError(f"{path}: no such directory")
    if not is_output_dir(path):
        raise BadInputError(
            f"{path} is not a kolapy output dir (no reports/junit.xml, properties.json "
            "or events.jsonl)"
        )
    try:
        properties = _json(path / PROPERTIES) or {}
        outputs = _outputs(_json(path / REPORT_JSON) or {})
        records = load_records(path / JUNIT, outputs) if (path / JUNIT).is_file() else []
    except (ValueError, ET.ParseError) as exc:
        raise BadInputError(f"{path}: damaged report file: {exc}") from None
    return RunDir(path, records, dict(properties), read_events(events_path(path)))


def load_records(
    junit: Path, outputs: dict[tuple[str, int], str] | None = None
) -> list[TestRecord]:
    """The test records of a junit.xml that kolapy wrote (subtests under their parent)."""
    outputs = outputs or {}
    tops: dict[tuple[str, int], TestRecord] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        rec = _record(case)
        rec.output = rec.output or outputs.get((rec.name, rec.attempt), "")
        parent = rec.name.split("/", 1)[0] if "/" in rec.name else ""
        top = tops.get((parent, rec.attempt)) if parent else None
        if top is not None:
            rec.parent = parent
            top.subtests.append(SubtestRecord(**{k: getattr(rec, k) for k in _FIELDS}))
        else:
            tops[(rec.name, rec.attempt)] = rec
    return list(tops.values())


_FIELDS = [f for f in SubtestRecord.__dataclass_fields__]


def _record(case: ET.Element) -> TestRecord:
    props: dict[str, list[str]] = {}
    for prop in case.iter("property"):
        props.setdefault(prop.get("name", ""), []).append(prop.get("value", ""))
    name = case.get("name", "")
    result = Result(props.get("kola.result", ["PASS"])[0])
    rec = TestRecord(name, result, float(case.get("time") or 0.0))
    rec.machines = " ".join(props.get("kola.machines", [])).split()
    for text in props.get("kola.restored", []):
        machine, _, source = text.partition(" from ")
        rec.restored[machine] = source
    rec.attempt = int(props.get("kola.attempt", ["1"])[0])
    rec.rerun_of = name if rec.attempt > 1 else None
    rec.warnings = props.get("kola.warning", [])
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            rec.message = el.get("message", "")
            rec.output = el.text or ""
    skipped = case.find("skipped")
    if skipped is not None:
        rec.reason = skipped.get("message", "")
    rec.console = case.findtext("system-out") or ""
    rec.journal = case.findtext("system-err") or ""
    return rec


def _outputs(report: dict[str, Any]) -> dict[tuple[str, int], str]:
    return {
        (str(t.get("name", "")), int(t.get("attempt", 1))): str(t.get("output") or "")
        for t in report.get("tests", [])
        if isinstance(t, dict)
    }


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
