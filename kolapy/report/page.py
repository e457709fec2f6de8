"""What the HTML report shows: summary, timeline geometry and one entry per test.

Plain data for the template (:mod:`kolapy.report.html` renders it); nothing
here knows HTML, so escaping stays the template engine's job.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolapy.report.model import Result, SubtestRecord, TestRecord, iter_all, overall_result
from kolapy.report.outdir import safe_component
from kolapy.report.timeline import Lane, Timeline

RESULT_ORDER = ("FAIL", "ERROR", "WARN", "PASS", "SKIP")
TAIL_LINES = 12
"""Lines of each log slice shown next to a failure when no badness line matched."""
SLICE_LIMIT = 256 * 1024
"""A log slice longer than this is cut to its end in the page (the file has it all)."""
MAX_ARTIFACTS = 60
MESSAGE_LINES = 6


@dataclass
class Excerpt:
    """Lines worth reading first: the badness hit or the tail of a slice."""

    title: str
    lines: list[str]


@dataclass
class Entry:
    """One test or subtest of the page."""

    id: str
    name: str
    result: str
    duration: str
    is_sub: bool
    machines: list[tuple[str, str]]
    """(machine, the saved machine it was restored from or "")."""
    message: str = ""
    reason: str = ""
    output: str = ""
    excerpts: list[Excerpt] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    console: str = ""
    journal: str = ""
    artifacts: list[tuple[str, str]] = field(default_factory=list)
    """(label, link relative to the page)."""
    subtests: list[tuple[str, str]] = field(default_factory=list)
    """(entry id, name) of each subtest (for a parent)."""
    attempt: int = 1


@dataclass
class Summary:
    """The bar at the top of the page."""

    overall: str
    state: str
    """``finished``, ``interrupted`` or ``unfinished`` (no exit status recorded)."""
    counts: list[tuple[str, int]]
    total: int
    wall: str
    image: str
    image_path: str
    image_sha256: str
    arch: str
    platform: str
    accel: str
    version: str
    command: str
    started: str


def entry_id(name: str, attempt: int = 1) -> str:
    """The HTML id of a test's entry (the timeline links to it)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "test"
    return f"t-{slug}" + (f"-a{attempt}" if attempt > 1 else "")


def duration_text(seconds: float) -> str:
    """``0.4 s``, ``48 s``, ``3m07s``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def leaves(records: Sequence[TestRecord]) -> list[SubtestRecord]:
    """What pytest ran: every subtest, and each test that has none."""
    return [r for rec in records for r in (rec.subtests or [rec])]


def summary(
    records: Sequence[TestRecord], properties: Mapping[str, Any], timeline: Timeline
) -> Summary:
    """Counts by result (of :func:`leaves`), wall time, image and run facts."""
    counts = Counter(r.result.value for r in leaves(records))
    exit_status = properties.get("exit_status")
    if exit_status == 2:
        state = "interrupted"
    elif exit_status is None and ("exit_status" in properties or not records):
        state = "unfinished"  # the run never got to its end (killed, or still running)
    else:
        state = "finished"
    start, end = _when(properties.get("start_time")), _when(properties.get("end_time"))
    wall = end - start if start is not None and end is not None else timeline.duration
    image = str(properties.get("image") or "")
    command = properties.get("command_line") or []
    return Summary(
        overall=overall_result(records) if records else "NONE",
        state=state,
        counts=[(r, counts[r]) for r in RESULT_ORDER],
        total=sum(counts.values()),
        wall=duration_text(wall),
        image=Path(image).name if image else "",
        image_path=image,
        image_sha256=str(properties.get("image_sha256") or ""),
        arch=str(properties.get("arch") or ""),
        platform=str(properties.get("platform") or ""),
        accel=str(properties.get("accel") or ""),
        version=str(properties.get("kolapy_version") or ""),
        command=shlex.join(str(c) for c in command) if isinstance(command, list) else str(command),
        started=str(properties.get("start_time") or ""),
    )


def entries(records: Sequence[TestRecord], out: Path) -> list[Entry]:
    """One entry per test, followed by its subtests."""
    result = []
    for rec in records:
        top = _entry(rec, out, is_sub=False)
        subs = [_entry(s, out, is_sub=True) for s in rec.subtests]
        top.subtests = [(s.id, s.name) for s in subs]
        top.artifacts += _other_artifacts(out, rec.name, top.artifacts)
        result += [top, *subs]
    return result


def _entry(rec: SubtestRecord, out: Path, is_sub: bool) -> Entry:
    failed = rec.result in (Result.FAIL, Result.ERROR, Result.WARN)
    message = (rec.message or (rec.output.strip().splitlines() or [""])[0]).strip()
    lines = message.splitlines()
    if len(lines) > MESSAGE_LINES:  # the rest is in the full failure text below it
        message = "\n".join([*lines[:MESSAGE_LINES], "..."])
    return Entry(
        id=entry_id(rec.name, rec.attempt),
        name=rec.name,
        result=rec.result.value,
        duration=duration_text(rec.duration_s),
        is_sub=is_sub,
        machines=[(m, rec.restored.get(m, "")) for m in rec.machines],
        message=message if failed else "",
        reason=rec.reason,
        output=rec.output,
        excerpts=excerpts(rec) if failed else [],
        warnings=list(rec.warnings),
        console=_cut(rec.console),
        journal=_cut(rec.journal),
        artifacts=_machine_artifacts(out, rec),
        attempt=rec.attempt,
    )


def excerpts(rec: SubtestRecord) -> list[Excerpt]:
    """The badness lines of the test's slices; else the last lines of each slice."""
    from kolapy.checks import check_text

    found = []
    for title, text in (("console", rec.console), ("journal", rec.journal)):
        hits = check_text(text) if text else []
        if hits:
            lines = [f"{b.pattern_name}: {b.line}" for b in hits]
            found.append(Excerpt(f"{title}: badness", lines))
    if found:
        return found
    for title, text in (("console", rec.console), ("journal", rec.journal)):
        lines = text.rstrip("\n").splitlines()
        if lines:
            found.append(Excerpt(f"last lines of the {title} slice", lines[-TAIL_LINES:]))
    return found


def _cut(text: str) -> str:
    if len(text) <= SLICE_LIMIT:
        return text
    return f"[... {len(text) - SLICE_LIMIT} characters cut: see the file ...]\n" + text[
        -SLICE_LIMIT:
    ]


def _machine_artifacts(out: Path, rec: SubtestRecord) -> list[tuple[str, str]]:
    found = []
    for machine in rec.machines:
        mdir = Path(out) / safe_component(rec.name.split("/", 1)[0]) / safe_component(machine)
        found += _files(out, mdir)
    return found[:MAX_ARTIFACTS]


def _other_artifacts(out: Path, name: str, have: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen = {link for _, link in have}
    files = _files(out, Path(out) / safe_component(name.split("/", 1)[0]))
    return [f for f in files if f[1] not in seen][: max(0, MAX_ARTIFACTS - len(have))]


def _files(out: Path, directory: Path) -> list[tuple[str, str]]:
    if not directory.is_dir():
        return []
    result = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        link = os.path.relpath(path, Path(out) / "reports").replace(os.sep, "/")
        result.append((rel, link))
    return result


# -- timeline geometry ------------------------------------------------------

WIDTH = 1000
LABEL_W = 180
LANE_H = 24
AXIS_H = 22


@dataclass
class Box:
    """One drawn segment."""

    x: float
    w: float
    kind: str
    title: str
    href: str = ""
    result: str = ""


@dataclass
class LaneView:
    """One drawn lane."""

    y: float
    machine: str
    note: str
    title: str
    boxes: list[Box]


@dataclass
class TimelineView:
    """The timeline as the template draws it (viewBox units)."""

    width: int
    height: int
    label_w: int
    lanes: list[LaneView]
    ticks: list[tuple[float, str]]
    empty: bool


def timeline_view(timeline: Timeline, ids: Mapping[str, str]) -> TimelineView:
    """Lane and segment boxes; ``ids`` maps a kola test name to its entry id."""
    span = max(timeline.duration, 1.0)
    plot = WIDTH - LABEL_W - 24  # room for the last tick's label

    def x(t: float) -> float:
        return round(LABEL_W + plot * max(0.0, min(t, span)) / span, 2)

    lanes = []
    for i, lane in enumerate(timeline.lanes):
        boxes = []
        for s in lane.segments:
            x0, x1 = x(s.start), x(s.end)
            title = f"{lane.machine}: {s.label} ({duration_text(s.duration)})"
            href = ""
            if s.kind == "test":
                took = duration_text(s.duration)
                title = f"{s.test} on {lane.machine}: {s.result or 'ran'} ({took})"
                href = "#" + ids[s.test] if s.test in ids else ""
            boxes.append(Box(x0, max(x1 - x0, 1.0), s.kind, title, href, s.result))
        lanes.append(
            LaneView(AXIS_H + i * LANE_H, lane.machine, _lane_note(lane), _lane_title(lane), boxes)
        )
    ticks = [(x(t), duration_text(t)) for t in _ticks(span)]
    height = AXIS_H + LANE_H * max(len(lanes), 1) + 4
    return TimelineView(WIDTH, height, LABEL_W, lanes, ticks, not lanes)


def _lane_note(lane: Lane) -> str:
    marks = [lane.test] if lane.test else []
    if lane.restored_from:
        marks.append("restored")
    if lane.saved:
        marks.append("saved")
    if lane.shared:
        marks.append(f"shared x{len(lane.tests)}")
    if lane.open:
        marks.append("never stopped")
    return ", ".join(marks)


def _lane_title(lane: Lane) -> str:
    text = f"machine {lane.machine} for {lane.test or '?'}"
    if lane.worker:
        text += f" (worker {lane.worker})"
    if lane.restored_from:
        text += f"; restored from the saved machine {lane.restored_from}"
    if lane.saved:
        text += "; booted once and saved for clones"
    if lane.tests:
        text += "; tests: " + ", ".join(lane.tests)
    if lane.error:
        text += f"; error: {lane.error}"
    return text


def _ticks(span: float) -> list[float]:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span / step <= 8:
            break
    return [i * step for i in range(int(span // step) + 1)]


def _when(text: Any) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def run_start(properties: Mapping[str, Any]) -> float | None:
    """The run's start (epoch seconds) from properties.json, if recorded."""
    return _when(properties.get("start_time"))


def run_end(properties: Mapping[str, Any]) -> float | None:
    """The run's end (epoch seconds) from properties.json, if recorded."""
    return _when(properties.get("end_time"))


__all__ = ["Entry", "Summary", "entries", "entry_id", "iter_all", "summary", "timeline_view"]
