"""Expected boot failures: a test that passes when a machine fails to boot the right way.

Some configs must stop the boot (a file Ignition cannot write, an unreachable or
tampered remote config).  Such a test boots the machine inside
:func:`expect_boot_failure`; the block passes only if the initramfs reported an
emergency (kolapy's fast-fail, not an SSH timeout), in the expected Ignition stage
and with the expected journal text::

    from kolapy import expect_boot_failure

    def test_unwritable(machine_factory, record_property):
        with expect_boot_failure(stage="files", match=r"not a directory") as failure:
            machine_factory(ignition=config)
        record_property("kola_note", failure.summary())

Give the test the ``no_emergency_shell_check`` flag: its console shows the emergency
shell on purpose.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kolapy.errors import BootError, EmergencyError

STAGES = ("fetch-offline", "fetch", "kargs", "disks", "mount", "files")
"""Ignition's stages, in the order the initramfs runs them."""

_STAGE_FAILED = re.compile(
    r"(?:Failed to start|Failed with result)[^\n]*?ignition-(?P<unit>[a-z-]+)\.service"
    r"|ignition-(?P<unit2>[a-z-]+)\.service: (?:Main process exited, code=exited|Failed with)"
    r"|Failed to start Ignition \((?P<desc>[a-z-]+)\)"
)
_IGNITION_ERROR = re.compile(r"\b(error|failed|failure)\b", re.IGNORECASE)
_NOT_AN_ERROR = re.compile(r"resource requires networking")
"""fetch-offline's note that the config needs the network: the normal path, not a failure."""


class BootFailureMismatch(AssertionError):
    """The boot did not fail the way the test expected (a test failure, not an error)."""


@dataclass
class BootFailure:
    """What an expected boot failure looked like; filled when the block ends."""

    error: EmergencyError | None = None
    stage: str = ""
    """The Ignition stage whose unit failed (``files``, ``fetch``, ...), or ``""``."""
    stage_line: str = ""
    """The journal line that names the failing stage."""
    ignition_lines: list[str] = field(default_factory=list)
    """Ignition's own error lines from the initramfs journal."""
    failed_at: float | None = None
    """Guest clock (epoch seconds) of the failure: the failing unit's line, else Ignition's
    first error."""
    dumped_at: float | None = None
    """Guest clock of the last journal entry sent to the host (the emergency dump)."""
    detected_at: float | None = None
    """Host clock when kolapy saw the emergency."""

    @property
    def journal(self) -> str:
        """The initramfs journal, rendered (empty before the failure)."""
        return self.error.journal if self.error is not None else ""

    @property
    def detection_seconds(self) -> float | None:
        """Seconds from the failure (guest clock) until kolapy reported it (host clock).

        The guest's clock starts from the host's RTC, so both clocks agree to about a
        second on a fresh boot.
        """
        if self.failed_at is None or self.detected_at is None:
            return None
        return self.detected_at - self.failed_at

    @property
    def guest_seconds(self) -> float | None:
        """Guest seconds from the failure until the initramfs sent its journal."""
        if self.failed_at is None or self.dumped_at is None:
            return None
        return self.dumped_at - self.failed_at

    def summary(self) -> str:
        """One paragraph for the report: the stage line and the timings."""
        parts = [f"expected boot failure in Ignition stage {self.stage or '?'}: {self.stage_line}"]
        if self.detection_seconds is not None:
            parts.append(f"emergency detected {self.detection_seconds:.1f} s after the failure"
                         f" (guest: journal sent after {self.guest_seconds or 0.0:.1f} s)")
        parts += [f"  {line}" for line in self.ignition_lines[:5]]
        return "\n".join(parts)


def journal_entries(raw: bytes) -> list[dict[str, Any]]:
    """The entries of a ``journalctl -o json`` stream, up to the ``{}`` end marker."""
    entries: list[dict[str, Any]] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict):
            continue
        if not entry:
            break
        entries.append(entry)
    return entries


def _message(entry: dict[str, Any]) -> str:
    msg = entry.get("MESSAGE", "")
    if isinstance(msg, list):  # journald sends non-UTF-8 messages as byte arrays
        return bytes(int(b) for b in msg).decode("utf-8", errors="replace")
    return str(msg)


def _seconds(entry: dict[str, Any]) -> float | None:
    try:
        return int(entry["__REALTIME_TIMESTAMP"]) / 1e6
    except (KeyError, TypeError, ValueError):
        return None


def analyse(error: EmergencyError) -> BootFailure:
    """Read the failing stage, Ignition's errors and the timings out of ``error``."""
    failure = BootFailure(error=error, detected_at=error.detected_at)
    entries = journal_entries(error.raw_journal)
    first_error: float | None = None
    for entry in entries:
        text = _message(entry)
        ident = str(entry.get("SYSLOG_IDENTIFIER", ""))
        if (ident == "ignition" and _IGNITION_ERROR.search(text)
                and not _NOT_AN_ERROR.search(text)):
            failure.ignition_lines.append(text)
            if first_error is None:
                first_error = _seconds(entry)
        match = _STAGE_FAILED.search(text)
        if match and not failure.stage:
            failure.stage = match.group("unit") or match.group("unit2") or match.group("desc")
            failure.stage_line = f"{ident}: {text}" if ident else text
            failure.failed_at = _seconds(entry)
    if failure.failed_at is None:
        failure.failed_at = first_error
    if entries:
        failure.dumped_at = _seconds(entries[-1])
    return failure


@contextmanager
def expect_boot_failure(stage: str | None = None, match: str | None = None,
                        within: float | None = None) -> Iterator[BootFailure]:
    """Expect the boot in the block to end in an initramfs emergency.

    ``stage``: the Ignition stage that must fail (one of :data:`STAGES`).
    ``match``: a regex that must occur in the initramfs journal.
    ``within``: seconds from the failure (guest clock) to kolapy's report, at most.

    The block passes when it raises :class:`~kolapy.errors.EmergencyError` meeting
    these; the yielded :class:`BootFailure` then describes it.  A machine that boots,
    another boot error (an SSH timeout is not an emergency) or a mismatch raises
    :class:`BootFailureMismatch`, a test failure.
    """
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown Ignition stage {stage!r} (one of {', '.join(STAGES)})")
    failure = BootFailure()
    try:
        yield failure
    except EmergencyError as exc:
        if exc.detected_at is None:
            exc.detected_at = time.time()
        found = analyse(exc)
        vars(failure).update(vars(found))
    except BootError as exc:
        raise BootFailureMismatch(
            f"expected an initramfs emergency, but the boot failed otherwise: {exc}"
        ) from exc
    else:
        raise BootFailureMismatch(
            "expected the boot to fail"
            + (f" in Ignition stage {stage}" if stage else "")
            + ", but the machine came up"
        )
    _check(failure, stage, match, within)


def _check(failure: BootFailure, stage: str | None, match: str | None,
           within: float | None) -> None:
    if stage is not None and failure.stage != stage:
        raise BootFailureMismatch(
            f"expected Ignition stage {stage} to fail, but "
            + (f"stage {failure.stage} failed: {failure.stage_line}" if failure.stage
               else "no Ignition stage failure is in the journal")
            + "\n" + "\n".join(failure.ignition_lines[:10])
        )
    if match is not None and not re.search(match, failure.journal):
        raise BootFailureMismatch(
            f"the initramfs journal has no match for {match!r}; Ignition said:\n"
            + ("\n".join(failure.ignition_lines[:10]) or failure.journal[-2000:])
        )
    seconds = failure.detection_seconds
    if within is not None:
        if seconds is None:
            raise BootFailureMismatch("the failure time is not in the initramfs journal")
        if seconds > within:
            raise BootFailureMismatch(
                f"the emergency was reported {seconds:.1f} s after the failure (limit {within} s)"
            )
