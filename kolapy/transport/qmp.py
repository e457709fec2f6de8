"""QMP (QEMU Machine Protocol) over a unix socket, through the ``qemu.qmp`` library.

A small synchronous wrapper with its own event loop, so it works from any thread
(pytest-xdist workers, signal-time cleanup) and every call has a time bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient

from kolapy.errors import TransportError


class QmpConnection:
    """A connection to one QEMU's monitor; use as a context manager or call :meth:`close`."""

    def __init__(self, socket_path: Path, *, name: str = "kolapy") -> None:
        self.socket_path = socket_path
        self._loop = asyncio.new_event_loop()
        self._client = QMPClient(name)
        self._connected = False

    def connect(self, timeout: float = 5.0) -> None:
        """Connect and negotiate capabilities; raise TransportError on failure."""
        try:
            self._run(self._client.connect(str(self.socket_path)), timeout)
        except Exception as exc:
            raise TransportError(f"QMP connect to {self.socket_path} failed: {exc}") from exc
        self._connected = True

    def command(self, name: str, timeout: float = 10.0, **args: Any) -> Any:
        """Execute one QMP command and return its result."""
        if not self._connected:
            self.connect(timeout)
        try:
            return self._run(self._client.execute(name, args or None), timeout)
        except Exception as exc:
            raise TransportError(f"QMP {name} failed: {exc}") from exc

    def query_status(self, timeout: float = 5.0) -> str:
        """The VM run state, e.g. ``running``, ``paused``, ``shutdown``."""
        return str(self.command("query-status", timeout)["status"])

    def powerdown(self, timeout: float = 5.0) -> None:
        """Press the ACPI power button (the guest shuts down gracefully, if it listens)."""
        self.command("system_powerdown", timeout)

    def quit(self, timeout: float = 5.0) -> None:
        """Ask QEMU to exit at once (the connection drops as QEMU goes away)."""
        # QEMU may close the socket before it answers.
        with contextlib.suppress(TransportError):
            self.command("quit", timeout)

    def close(self) -> None:
        """Disconnect and release the event loop; safe to call twice."""
        if self._loop.is_closed():
            return
        try:
            if self._connected:
                self._run(self._client.disconnect(), 5.0)
        except Exception:
            pass  # Best effort: QEMU may already be gone.
        finally:
            self._connected = False
            self._loop.close()

    def __enter__(self) -> QmpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Any, timeout: float) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(coro, timeout))
