"""``<out>/reports/report.html``: one self-contained page per run.

Rendered with Jinja2 (autoescaping on: console text with HTML in it stays
text) from the templates shipped in ``kolapy/report/templates/``; CSS, the SVG
timeline and the little JS for filters are inline, so the file works offline
and as a CI attachment.  :func:`write_html` runs at the end of every run with
the other reports; :func:`regenerate` rebuilds the page from the files of a
finished or interrupted run (``kolapy report DIR``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kolapy.report.model import TestRecord

HTML_FILE = Path("reports/report.html")


def render_html(
    out: Path,
    records: Sequence[TestRecord],
    properties: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
) -> str:
    """The page for a run whose files are in ``out``."""
    import jinja2

    from kolapy.report import page
    from kolapy.report.timeline import build_timeline, run_events

    start, end = page.run_start(properties), page.run_end(properties)
    timeline = build_timeline(run_events(events, start), start, end)
    entries = page.entries(records, Path(out))
    ids = {e.name: e.id for e in entries}
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kolapy.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(
        summary=page.summary(records, properties, timeline),
        timeline=page.timeline_view(timeline, ids),
        lanes=timeline.lanes,
        entries=entries,
        results=page.RESULT_ORDER,
    )


def write_html(
    out: Path,
    records: Sequence[TestRecord],
    properties: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``<out>/reports/report.html``; the events default to ``<out>/events.jsonl``."""
    from kolapy.report.events import events_path, read_events

    out = Path(out)
    if events is None:
        events = read_events(events_path(out))
    path = out / HTML_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(out, records, properties, events)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a page
    return path


def regenerate(out: Path) -> Path:
    """Rebuild the page of the run in ``out`` from its files (BadInputError if none)."""
    from kolapy.report.rundir import load_run

    run = load_run(Path(out))
    return write_html(run.path, run.records, run.properties, run.events)
