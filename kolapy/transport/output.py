"""Where a command's output goes: memory up to a cap, then a file; never all in memory.

A command may print more than the host should hold (a log dump, ``cat`` of a disk).
Each stream (stdout, stderr) goes to an :class:`OutputSink`:

- with a file (``machine.run(cmd, stdout=path)``) every byte is written there and
  nothing is kept in memory;
- with a spool (the machine's artifact directory) the first ``cap`` bytes stay in
  memory; past the cap the whole stream goes to ``<artifacts>/outputs/<n>.stdout``
  and the returned text is the first ``cap`` bytes plus one line naming that file;
- with neither, the stream is held whole (a machine used outside a run).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_CAP = 64 * 1024 * 1024
"""Bytes of one stream kept in memory before it is spooled to a file."""


class OutputSpool:
    """Numbered files in ``directory`` for outputs past ``cap`` (created on first use)."""

    def __init__(self, directory: Path, cap: int = DEFAULT_OUTPUT_CAP) -> None:
        self.directory = directory
        self.cap = cap
        self._serial = itertools.count(1)

    def sinks(self) -> tuple[OutputSink, OutputSink]:
        """A (stdout, stderr) pair for one command."""
        n = next(self._serial)
        return (OutputSink(cap=self.cap, spill=self.directory / f"{n:03d}.stdout"),
                OutputSink(cap=self.cap, spill=self.directory / f"{n:03d}.stderr",
                           name="stderr"))


class OutputSink:
    """One output stream of one command (see the module docstring).

    ``file``: write everything there (the caller owns it).  ``spill``: the file to
    move to once more than ``cap`` bytes arrived.  Neither: keep everything.
    """

    def __init__(self, *, cap: int | None = None, spill: Path | None = None,
                 file: BinaryIO | None = None, name: str = "stdout") -> None:
        self.cap, self.spill, self.file, self.name = cap, spill, file, name
        self.size = 0
        self.head = bytearray()
        self.path: Path | None = None
        self._spilled: BinaryIO | None = None
        if file is not None:
            file_name = getattr(file, "name", None)
            self.path = Path(file_name) if isinstance(file_name, str) else None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
            return
        if self._spilled is not None:
            self._spilled.write(data)
            return
        if self.cap is None or self.spill is None or len(self.head) + len(data) <= self.cap:
            self.head += data
            return
        self.spill.parent.mkdir(parents=True, exist_ok=True)
        self._spilled = self.spill.open("wb")
        self.path = self.spill
        self._spilled.write(self.head)
        self._spilled.write(data)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += data[:room]

    def close(self) -> None:
        """Close the spill file (a caller's ``file`` stays open); safe to call twice."""
        if self._spilled is not None:
            self._spilled.close()
            self._spilled = None

    @property
    def spilled(self) -> bool:
        return self.file is None and self.path is not None

    def bytes(self) -> bytes:
        """What was kept in memory (all of it unless spilled or sent to a file)."""
        return bytes(self.head)

    def text(self, what: str = "") -> str:
        """The kept output, decoded leniently; a spilled one ends with a line naming its file."""
        if not self.spilled:
            return self.head.decode("utf-8", errors="replace")
        note = (f"\n[kolapy: {what + ' ' if what else ''}{self.name} was {self.size} bytes, "
                f"over the {self.cap} kept in memory; the first {len(self.head)} are above, "
                f"all of it is in {self.path}]\n")
        log.warning("%s", note.strip())
        return (self.head + note.encode()).decode("utf-8", errors="replace")
