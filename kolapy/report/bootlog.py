"""A machine's boot in the reports: attached to the first testcase that used the machine.

Each testcase carries the console and journal slice of its own run.  The boot
of a machine (QEMU start to ready) belongs to no test, so the first testcase
that used the machine gets its slice from QEMU's start instead: the boot, then
the test.  A machine restored from a saved one never booted: that testcase
first gets the saved machine's boot (its console and journal files), then the
clone's own logs.  A parent test (``basic``) carries the slices of its subtests
(:mod:`kolapy.report.collector`), so the boot is there too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kolapy.machine.base import LogMark

STREAM_START = LogMark(0, 0)


def _header(text: str) -> str:
    return f"===== kolapy: {text} =====\n"


def _template_boot(machine: Any) -> tuple[str, str]:
    """The saved machine's boot logs for a restored clone, else empty strings."""
    template = getattr(machine, "template", None)
    directory = getattr(template, "directory", None)
    if not isinstance(directory, Path):
        return "", ""
    from kolapy.machine.qemu_command import MachinePaths
    from kolapy.transport.journal import render_journal

    paths = MachinePaths.for_workdir(directory)
    console = journal = ""
    if paths.console_log.exists():
        console = paths.console_log.read_text(errors="replace")
    if paths.journal.exists():
        journal = render_journal(paths.journal.read_bytes())
    title = _header(f"{machine.name} was restored from {directory.name}; its boot:")
    return title + console, title + journal


def _stream_start(mark: Any) -> Any:
    """The start of the streams, as the machine spells marks (test fakes use tuples)."""
    if isinstance(mark, tuple):
        return type(mark)(0 for _ in mark)
    return STREAM_START


class BootLogs:
    """Which machines' boots went into a report already (one per worker process)."""

    def __init__(self) -> None:
        self._attached: set[str] = set()

    def slice(self, machine: Any, mark: Any) -> tuple[str, str]:
        """(console, journal) for a testcase that used ``machine`` from ``mark`` on.

        The first call for a machine also covers its boot (from QEMU's start).
        """
        if machine.name in self._attached:
            return machine.logs_since(mark)  # type: ignore[no-any-return]
        self._attached.add(machine.name)
        t_console, t_journal = _template_boot(machine)
        console, journal = machine.logs_since(_stream_start(mark))
        title = _header(f"{machine.name} from QEMU's start: its boot, then this test")
        return t_console + title + console, t_journal + title + journal


FAILED_BOOT_TAIL = 1 << 20
"""Bytes of a failed boot's console and journal put into the report (the end of each)."""


def failed_boot(exc: BaseException) -> tuple[str, str, str] | None:
    """(machine name, console, journal) of the boot that raised ``exc``, or None.

    The machine pool marks a boot error with the machine (``kolapy_machine``); that
    machine is stopped by now, so its logs come from the artifact files it kept.
    """
    machine = getattr(exc, "kolapy_machine", None)
    directory = getattr(machine, "artifact_dir", None)
    if machine is None or directory is None:
        return None
    texts = []
    for kept in ("console.txt", "journal.txt"):
        path = Path(directory) / kept
        try:
            with path.open("rb") as f:
                f.seek(max(0, path.stat().st_size - FAILED_BOOT_TAIL))
                text = f.read().decode("utf-8", errors="replace")
        except OSError as err:
            text = f"<{path} unavailable: {err}>\n"
        texts.append(_header(f"{machine.name}: the failed boot ({path})") + text)
    return str(machine.name), texts[0], texts[1]
