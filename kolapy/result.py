"""The result of one command run on a machine (any transport: SSH, console, a fake).

It sits below both `kolapy.transport` and `kolapy.machine`, which return it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CommandResult:
    """Exit code and output of a command; ``succeeded`` when ``rc == 0``.

    ``stdout_file``/``stderr_file`` name the file holding the whole stream when it went
    to a file: the one given to ``machine.run(..., stdout=)``, or a spool file under the
    machine's artifacts when the output passed the in-memory cap (then ``stdout`` is its
    first part and a line naming the file).
    """

    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float
    stdout_file: Path | None = None
    stderr_file: Path | None = None

    @property
    def succeeded(self) -> bool:
        return self.rc == 0

    @property
    def failed(self) -> bool:
        return self.rc != 0
