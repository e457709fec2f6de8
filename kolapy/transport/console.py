"""The serial console: a growing log file (offsets, slices, waits) and an interactive socket.

QEMU writes every console byte to ``console.txt`` (``logfile=`` of the chardev) and
also serves it on a unix socket; :class:`ConsoleLog` reads the file (never misses
output, works after the VM is gone), :class:`InteractiveConsole` drives the
socket with pexpect for tests that type at a login prompt.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from pathlib import Path

import pexpect
from pexpect import fdpexpect

from kolapy.errors import TimeoutExpired, TransportError

_POLL = 0.2


class ConsoleLog:
    """Read access to a console log file that QEMU keeps appending to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log, as a byte offset for :meth:`text_since`."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def text_since(self, offset: int = 0, end: int | None = None) -> str:
        """The console text from ``offset`` (to ``end``), decoded leniently."""
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                data = f.read() if end is None else f.read(max(0, end - offset))
        except FileNotFoundError:
            return ""
        return clean_console_text(data.decode("utf-8", errors="replace"))

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines (for error messages)."""
        return "\n".join(self.text_since(max(0, self.mark() - 64 * 1024)).splitlines()[-lines:])

    def search(self, pattern: str | re.Pattern[str], since: int = 0) -> re.Match[str] | None:
        """The first match of ``pattern`` in the text since ``since``, or None."""
        return re.compile(pattern).search(self.text_since(since))

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float, since: int | None = None
    ) -> re.Match[str]:
        """Wait until ``pattern`` appears after offset ``since`` (default: from now).

        Raises :class:`TimeoutExpired` with the console tail.
        """
        __tracebackhide__ = True
        regex = re.compile(pattern)
        start = self.mark() if since is None else since
        deadline = time.monotonic() + timeout
        # Re-scan a little before the previous end so a match split across two reads is found.
        scanned = start
        while True:
            end = self.mark()
            if end > scanned:
                overlap = max(start, scanned - 4096)
                match = regex.search(self.text_since(overlap, end))
                if match:
                    return match
                scanned = end
            if time.monotonic() >= deadline:
                raise TimeoutExpired(
                    f"console did not show {regex.pattern!r} within {timeout:.0f}s; "
                    f"last lines:\n{self.tail(15)}"
                )
            time.sleep(_POLL)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1bc|\r(?=\n)")


def clean_console_text(text: str) -> str:
    """Strip terminal control sequences and CRs so the text reads well in a report."""
    return _ANSI.sub("", text).replace("\r", "\n")


class InteractiveConsole:
    """pexpect over the console socket: ``expect``, ``send``, ``sendline``.

    QEMU serves one client at a time; close it (context manager) when done.
    """

    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(socket_path))
        except OSError as exc:
            self._sock.close()
            raise TransportError(f"cannot open console socket {socket_path}: {exc}") from exc
        self.child = fdpexpect.fdspawn(self._sock.fileno(), timeout=timeout, encoding="utf-8",
                                       codec_errors="replace")

    def expect(self, pattern: str | list[str], timeout: float | None = None) -> int:
        """Wait for ``pattern`` (regex or list); return the index matched."""
        __tracebackhide__ = True
        try:
            return int(self.child.expect(pattern, timeout=timeout))
        except pexpect.TIMEOUT:
            raise TimeoutExpired(
                f"console did not show {pattern!r}; last output: {self.child.before[-500:]!r}"
            ) from None
        except pexpect.EOF:
            raise TransportError("console closed (QEMU exited?)") from None

    def send(self, text: str) -> None:
        self.child.send(text)

    def sendline(self, text: str = "") -> None:
        # A serial console expects a carriage return, not a bare newline.
        self.child.send(text + "\r")

    @property
    def before(self) -> str:
        return str(self.child.before or "")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> InteractiveConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
