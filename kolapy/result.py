"""The result of one command run on a machine (any transport: SSH, console, a fake).

It sits below both `kolapy.transport` and `kolapy.machine`, which return it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    """Exit code and output of a command; ``succeeded`` when ``rc == 0``."""

    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float

    @property
    def succeeded(self) -> bool:
        return self.rc == 0

    @property
    def failed(self) -> bool:
        return self.rc != 0
