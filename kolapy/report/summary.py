"""The summary table printed at the end of a run (rich; plain text when not a tty)."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kolapy.report.model import Result, TestRecord, iter_all

STYLES = {
    Result.PASS: "green",
    Result.FAIL: "bold red",
    Result.ERROR: "bold magenta",
    Result.SKIP: "blue",
    Result.WARN: "yellow",
}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def summary_table(records: Sequence[TestRecord]) -> Table:
    """A rich Table: test (subtests indented), result, duration, machines, note."""
    table = Table(title="kolapy results", title_justify="left", show_lines=False)
    table.add_column("test")
    table.add_column("result")
    table.add_column("duration", justify="right")
    table.add_column("machines")
    table.add_column("note", overflow="fold")
    for rec in iter_all(records):
        is_sub = bool(rec.parent)
        name = ("  " + rec.name.split("/", 1)[-1]) if is_sub else rec.name
        if rec.attempt > 1:
            name += f" (attempt {rec.attempt})"
        note = rec.reason or rec.message or (rec.warnings[0] if rec.warnings else "")
        table.add_row(
            name,
            Text(rec.result.value, style=STYLES[rec.result]),
            _duration(rec.duration_s),
            ", ".join(rec.machines),
            note.splitlines()[0] if note else "",
        )
    return table


def counts_line(records: Sequence[TestRecord]) -> str:
    """``2 PASS, 1 FAIL`` over top-level tests, in a fixed order."""
    counts = Counter(r.result for r in records)
    order = [Result.PASS, Result.WARN, Result.FAIL, Result.ERROR, Result.SKIP]
    return ", ".join(f"{counts[r]} {r.value}" for r in order if counts[r]) or "no tests"


def render_summary(records: Sequence[TestRecord], console: Any) -> None:
    """Print the table and a counts line to ``console``.

    ``console`` is a rich ``Console`` (colours only on a terminal, as rich
    decides) or anything with ``write_line`` such as pytest's terminal reporter
    (colours only when it has markup).
    """
    if isinstance(console, Console):
        console.print(summary_table(records))
        console.print(counts_line(records))
        return
    markup = bool(getattr(getattr(console, "_tw", None), "hasmarkup", False))
    width = int(getattr(getattr(console, "_tw", None), "fullwidth", 0) or 120)
    buf = io.StringIO()
    Console(file=buf, force_terminal=markup, no_color=not markup, width=width).print(
        summary_table(records)
    )
    for line in buf.getvalue().splitlines():
        console.write_line(line)
    console.write_line(counts_line(records))
