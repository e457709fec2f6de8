"""Signs of a boot's progress read from its logs, not from SSH: a lost boot fails in
seconds (:class:`BootWatch`), and SSH is first tried once sshd is up (:class:`SshHint`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

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
        detected_at = time.time()
        # The initramfs writes its journal and then "{}"; give it a moment to finish.
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline and b"{}" not in self.emergency.raw_since(0)[-64:]:
            time.sleep(0.2)
        raw = self.emergency.raw_since(0)
        journal = render_journal(raw)
        lines = failure_lines(journal) or journal.splitlines()[-40:]
        detail = "\n".join(lines) or self.console.tail(40)
        return EmergencyError(
            f"{self.name}: {what} (full journal: {self.emergency.path}):\n{detail}",
            journal=journal, raw_journal=raw, detected_at=detected_at,
        )


SSH_UP_JOURNAL = re.compile(
    rb"Server listening on|Listening on [^\"]*ssh|Reached target [^\"]*[Mm]ulti-[Uu]ser"
)
"""Journal messages (raw ``journalctl -o json`` bytes) after which sshd accepts connections."""
SSH_UP_CONSOLE = re.compile(r"\S+ login: ")
"""The serial getty's prompt: the system is far enough up to try SSH."""


class SshHint:
    """Says when to try SSH, so that connection attempts do not hit a guest without sshd.

    Through QEMU's user-mode network, a connection to a guest whose sshd is not up yet
    is accepted on the host and then hangs until the client gives up; the guest's TCP
    stack later accepts these dead connections, and every one costs an sshd fork at the
    moment the boot is busiest (measured: 5 such forks, ~10 s to the first login under
    TCG).  So SSH is tried once the live journal or the console says sshd is up.  Blind
    attempts (every ``blind_every`` seconds) cover a missing sign: from ``blind_after``
    seconds while the journal stream is still silent (its unit may never start), and
    from ``4 * blind_after`` even when it streams (an sshd that logs differently).
    """

    def __init__(self, journal: JournalLog, console: ConsoleLog, *, journal_since: int,
                 console_since: int, blind_after: float, blind_every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.journal = journal
        self.console = console
        self.clock = clock
        self.blind_every = blind_every
        self._jpos = journal_since
        self._console_since = console_since
        start = clock()
        self._next_blind = start + blind_after
        self._blind_anyway = start + 4 * blind_after
        self._journal_alive = False
        self.seen = False

    def ready(self) -> bool:
        """True when an SSH attempt is worth making now."""
        if self.seen or self._look():
            self.seen = True
            return True
        now = self.clock()
        if now >= self._next_blind and (not self._journal_alive or now >= self._blind_anyway):
            self._next_blind = now + self.blind_every
            return True
        return False

    def _look(self) -> bool:
        data = self.journal.raw_since(self._jpos)
        self._journal_alive = self._journal_alive or bool(data)
        if SSH_UP_JOURNAL.search(data):
            return True
        # Rescan a short overlap next time: a message may be torn at the end.
        self._jpos += max(0, len(data) - 256)
        return self.console.search(SSH_UP_CONSOLE, self._console_since) is not None
