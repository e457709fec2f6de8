"""The kolapy exception hierarchy.

Three failure classes (see docs/design.md):

* :class:`BadInputError` -- the user gave us something unusable (missing image,
  invalid Ignition, missing QEMU/firmware).  Reported as one line, exit code 2,
  before any VM starts.
* :class:`InfraError` -- the harness or the machine failed (QEMU would not
  start, no SSH in time, initramfs emergency).  Reported as a test *error*.
* :class:`CommandFailedError` -- a command the test ran failed; it is an
  ``AssertionError`` so pytest reports it as a test *failure*.
"""

from __future__ import annotations


class KolapyError(Exception):
    """Base class of every error kolapy raises on purpose."""


class BadInputError(KolapyError):
    """Unusable input from the user.  The message names the input."""

    exit_code = 2


class InfraError(KolapyError):
    """The harness or the machine failed, not the test's own assertion."""


class BootError(InfraError):
    """QEMU could not start, or the machine did not become ready."""


class EmergencyError(BootError):
    """The initramfs reported an emergency (e.g. Ignition failed).

    ``journal`` is the initramfs journal rendered as text, ``raw_journal`` the JSON
    lines it was sent as (with the guest's timestamps), ``detected_at`` the host's
    ``time.time()`` when the harness saw the emergency (None if not known).
    """

    def __init__(self, message: str, journal: str = "", *, raw_journal: bytes = b"",
                 detected_at: float | None = None) -> None:
        super().__init__(message)
        self.journal = journal
        self.raw_journal = raw_journal
        self.detected_at = detected_at


class TransportError(InfraError):
    """SSH or the console could not be reached or broke."""


class TimeoutExpired(InfraError):
    """A wait ran past its total deadline."""


class CommandFailedError(AssertionError):
    """A command on the machine did not do what the test expected.

    Carries the command, exit code and output so the report can show them.
    """

    def __init__(self, command: str, rc: int, stdout: str, stderr: str, expected: str) -> None:
        self.command = command
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"command {command!r} {expected}: exit code {rc}\n"
            f"--- stdout ---\n{_tail(stdout)}\n--- stderr ---\n{_tail(stderr)}"
        )


#: How much of a failed command's stdout/stderr the error message (and so JUnit) shows;
#: the whole output stays on the exception's ``stdout``/``stderr``.
MESSAGE_OUTPUT_LIMIT = 64 * 1024


def _tail(text: str, limit: int = MESSAGE_OUTPUT_LIMIT) -> str:
    text = text.rstrip()
    if len(text) <= limit:
        return text
    return f"[kolapy: {len(text) - limit} earlier characters left out]\n{text[-limit:]}"
