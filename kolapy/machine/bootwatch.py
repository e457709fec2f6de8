"""Signs that a boot is lost, checked between SSH attempts so a dead boot fails in seconds."""

from __future__ import annotations

import re
import time

from kolapy.errors import EmergencyError
from kolapy.transport.console import ConsoleLog
from kolapy.transport.journal import JournalLog, failure_lines, render_journal

FATAL_CONSOLE = re.compile(
    r"Kernel panic - not syncing|Starting Emergency Shell|You are in emergency mode"
    r"|Press Enter for emergency shell|dracut: Refusing to continue"
)
"""Console lines after which the boot will never reach SSH."""


class BootWatch:
    """Watches the initramfs emergency port and the console of one boot.

    ``console_since`` is the console offset where the current boot began (moved on reboot).
    """

    def __init__(self, name: str, console: ConsoleLog, emergency: JournalLog,
                 settle: float = 2.0) -> None:
        self.name = name
        self.console = console
        self.emergency = emergency
        self.settle = settle
        self.console_since = 0

    def check(self) -> None:
        """Raise :class:`EmergencyError` if the initramfs or the console reported a lost boot."""
        if self.emergency.has_content():
            raise self.emergency_error("the initramfs reported an emergency")
        match = self.console.search(FATAL_CONSOLE, self.console_since)
        if match:
            raise self.emergency_error(f"console shows {match.group(0)!r}")

    def emergency_error(self, what: str) -> EmergencyError:
        """The error to raise, carrying the emergency journal (rendered) when there is one."""
        # The initramfs writes its journal and then "{}"; give it a moment to finish.
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline and b"{}" not in self.emergency.raw_since(0)[-64:]:
            time.sleep(0.2)
        journal = render_journal(self.emergency.raw_since(0))
        lines = failure_lines(journal) or journal.splitlines()[-40:]
        detail = "\n".join(lines) or self.console.tail(40)
        return EmergencyError(
            f"{self.name}: {what} (full journal: {self.emergency.path}):\n{detail}",
            journal=journal,
        )
