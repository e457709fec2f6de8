"""``<out>/test.tap``: TAP version 13, one line per top-level kola test.

``ok N - name``, ``not ok N - name`` (FAIL and ERROR, followed by ``#`` lines
with the message), ``ok N - name # SKIP reason``; WARN is ``ok`` followed by a
``# WARN: ...`` diagnostic line.  ``#`` is removed from names, as kola does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kolapy.report.model import Result, TestRecord


def _diag(text: str, limit: int = 20) -> list[str]:
    return [f"# {line}".rstrip() for line in text.strip().splitlines()[:limit]]


def tap_text(records: Sequence[TestRecord]) -> str:
    """The TAP document for ``records``."""
    lines = ["TAP version 13", f"1..{len(records)}"]
    for n, rec in enumerate(records, 1):
        name = rec.name.replace("#", "")
        if rec.attempt > 1:
            name += f" (attempt {rec.attempt})"
        if rec.result.failed:
            lines.append(f"not ok {n} - {name}")
            lines += _diag(f"{rec.result.value}: {rec.message or rec.output}")
        elif rec.result is Result.SKIP:
            reason = " ".join(rec.reason.split())
            lines.append(f"ok {n} - {name} # SKIP {reason}".rstrip())
        else:
            lines.append(f"ok {n} - {name}")
            if rec.result is Result.WARN:
                lines += _diag("WARN: " + "; ".join(rec.warnings or [rec.output]))
    return "\n".join(lines) + "\n"


def write_tap(out: Path, records: Sequence[TestRecord]) -> Path:
    """Write ``<out>/test.tap``; return its path."""
    path = Path(out) / "test.tap"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tap_text(records), encoding="utf-8")
    return path
