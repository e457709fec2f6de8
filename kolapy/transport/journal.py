"""The guest journal as streamed to a virtio port (``journalctl -o json``), rendered as text.

Two streams use this format: the harness's ``kolapy.journal`` port (the whole boot,
followed live) and the initramfs emergency port (its journal, then ``{}``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def render_entry(entry: dict[str, Any]) -> str:
    """One journal entry as a ``journalctl``-like short line."""
    stamp = ""
    usec = entry.get("__REALTIME_TIMESTAMP")
    if usec is not None:
        try:
            when = datetime.fromtimestamp(int(usec) / 1e6, tz=UTC)
            stamp = when.strftime("%b %d %H:%M:%S.%f")
        except (ValueError, OverflowError, OSError):
            stamp = ""
    ident = _text(entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM"))
    if not ident and entry.get("_TRANSPORT") == "kernel":
        ident = "kernel"
    pid = entry.get("_PID") or entry.get("SYSLOG_PID")
    who = f"{ident}[{_text(pid)}]" if ident and pid else (ident or "?")
    host = _text(entry.get("_HOSTNAME"))
    parts = [p for p in (stamp, host, f"{who}:") if p]
    return " ".join(parts) + " " + _text(entry.get("MESSAGE"))


def render_journal(data: str | bytes) -> str:
    """Render a JSON-lines journal stream as text; stops at the ``{}`` end marker.

    A torn last line (the stream is live) and lines that are not JSON are skipped;
    an entry glued to a torn one (see :func:`parse_line`) is kept.
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    lines: list[str] = []
    for raw in data.splitlines():
        entry = parse_line(raw)
        if entry is None:
            continue
        if not entry:
            break  # The initramfs writes {} after its last entry.
        lines.append(render_entry(entry))
    return "\n".join(lines) + ("\n" if lines else "")


_FAILURE_LINE = re.compile(
    r"ignition\[\d+\]: .*(error|fail|invalid)|Failed to start|Failed with result"
    r"|Dependency failed|emergency", re.IGNORECASE,
)


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """One line of ``journalctl -o json`` as a dict, or None when it holds no entry.

    A streamer killed mid-entry at shutdown leaves a torn line with no newline, and
    the next boot's first entry (its kernel banner) is glued to it. The complete entry
    at its end is read, so it is not lost with the torn one.
    """
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text:
        return None
    try:
        entry = json.loads(text)
    except json.JSONDecodeError:
        entry = _glued_entry(text)
    return entry if isinstance(entry, dict) else None


def _glued_entry(text: str) -> Any:
    """The complete entry that ends a torn line: the longest suffix that parses.

    journalctl does not put the fields in a fixed order, so each ``{"`` is tried
    from the left; one inside a string value leaves an unbalanced suffix.
    """
    start = text.find('{"', 1)
    while start > 0:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.find('{"', start + 1)
    return None


def split_by_boot_id(data: bytes) -> list[bytes]:
    """The JSON-lines stream cut into one chunk per boot (runs of the same ``_BOOT_ID``).

    Lines without a boot id (torn, not JSON) stay with the chunk they are in.
    """
    chunks: list[list[bytes]] = []
    current: str | None = None
    for line in data.splitlines(keepends=True):
        entry = parse_line(line)
        boot = None if entry is None else entry.get("_BOOT_ID")
        if boot and boot != current:
            current = boot
            chunks.append([])
        if not chunks:
            chunks.append([])
        chunks[-1].append(line)
    return [b"".join(c) for c in chunks]


def failure_lines(text: str, limit: int = 15) -> list[str]:
    """The lines of a rendered journal that explain a failed boot (Ignition errors, failed
    units), at most ``limit``; empty when nothing matches."""
    return [line for line in text.splitlines() if _FAILURE_LINE.search(line)][:limit]


def last_cursor(data: str | bytes) -> str | None:
    """The ``__CURSOR`` of the last complete entry in the stream, if any."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    for raw in reversed(data.splitlines()):
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "__CURSOR" in entry:
            return str(entry["__CURSOR"])
    return None


class JournalLog:
    """Offsets and rendered slices of a growing JSON journal file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """Offset of the end of the last complete line (so a slice never starts mid-entry)."""
        try:
            with self.path.open("rb") as f:
                size = f.seek(0, 2)
                # Entries are far shorter than 1 MiB; look back only that far.
                start = max(0, size - (1 << 20))
                f.seek(start)
                tail = f.read()
        except FileNotFoundError:
            return 0
        newline = tail.rfind(b"\n")
        return start + newline + 1 if newline >= 0 else start

    def raw_since(self, offset: int = 0) -> bytes:
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def text_since(self, offset: int = 0) -> str:
        """Rendered text of the entries after ``offset``."""
        return render_journal(self.raw_since(offset))

    def has_content(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False


def _text(value: Any) -> str:
    """journalctl -o json encodes non-UTF-8 fields as a list of byte values."""
    if value is None:
        return ""
    if isinstance(value, list):
        try:
            return bytes(value).decode("utf-8", errors="replace")
        except (TypeError, ValueError):
            return " ".join(_text(v) for v in value)
    return str(value)
