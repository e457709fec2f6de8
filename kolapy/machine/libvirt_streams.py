"""The console and journal ports of a domain on any host, through libvirt streams.

With pool storage a domain writes no file on this machine: its serial console is a
pty and its virtio ports are unix sockets on its host (``virDomainOpenChannel``
opens no other kind).  Each is opened here as a libvirt stream
(``virDomainOpenConsole``, ``virDomainOpenChannel``) and copied by a thread into the
same local file the file-storage domain would have written, so the console and
journal readers, the boot watch and the artifacts work unchanged.  The domain is
created paused, its streams opened, then resumed: no byte of the boot is missed.

Each stream has a connection of its own: a thread blocked in a stream's receive
holds its connection's I/O, and libvirt 9.0's client did not hand it over to a call
from another thread (seen: ``virDomainIsActive`` waited forever on the shared
connection while the stream threads polled).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kolapy.machine import libvirt_hosts as hosts

log = logging.getLogger("kolapy.machine")

_RECV = 64 * 1024


class StreamCopy(threading.Thread):
    """Copies one domain stream into a local file until the stream ends."""

    def __init__(self, uri: str, what: str, open_stream: Callable[[Any, Any], None],
                 path: Path) -> None:
        super().__init__(name=f"libvirt-stream {what}", daemon=True)
        self.what = what
        self.path = path
        self.error = ""
        libvirt = hosts._libvirt()
        self._conn = libvirt.open(uri)
        try:
            self._stream = self._conn.newStream(0)
            open_stream(self._stream, self._conn)  # libvirtError: no such port
        except BaseException:
            self._conn.close()
            raise
        path.unlink(missing_ok=True)
        path.touch()

    def run(self) -> None:
        libvirt = hosts._libvirt()
        try:
            with open(self.path, "ab", buffering=0) as out:
                while True:
                    data = self._stream.recv(_RECV)
                    if not isinstance(data, bytes) or not data:  # -2: would block; b"": EOF
                        if data == -2:
                            continue
                        break
                    out.write(data)
        except libvirt.libvirtError as exc:  # the domain went away
            self.error = str(exc)
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                self._stream.abort()
            with contextlib.suppress(libvirt.libvirtError):
                self._conn.close()

    def close(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for the copy to end once the domain is gone."""
        self.join(timeout)
        if self.is_alive():
            log.debug("%s: stream still open after the domain ended", self.what)


def open_streams(uri: str, dom: Any, console: Path,
                 channels: list[tuple[Path, str]]) -> list[StreamCopy]:
    """Start copying ``dom``'s console into ``console`` and each (file, port) channel."""
    name = dom.name()

    def console_of(stream: Any, conn: Any) -> None:
        conn.lookupByName(name).openConsole(None, stream, 0)

    copies = [StreamCopy(uri, "console", console_of, console)]
    for path, port in channels:
        copies.append(StreamCopy(
            uri, port, lambda s, c, p=port: c.lookupByName(name).openChannel(p, s, 0), path))
    for c in copies:
        c.start()
    return copies
