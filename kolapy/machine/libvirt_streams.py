"""The console and journal ports of a domain on any host, through libvirt streams.

With pool storage a domain writes no file on this machine: its serial console is a
pty and its virtio ports are unix sockets on its host (``virDomainOpenChannel``
opens no other kind).  Each is opened here as a libvirt stream
(``virDomainOpenConsole``, ``virDomainOpenChannel``) and copied by a thread into the
same local file the file-storage domain would have written, so the console and
journal readers, the boot watch and the artifacts work unchanged.  The domain is
created paused, its streams opened, then resumed: no byte of the boot is missed.
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

    def __init__(self, uri: str, what: str, open_stream: Callable[[Any], None],
                 path: Path) -> None:
        super().__init__(name=f"libvirt-stream {what}", daemon=True)
        self.what = what
        self.path = path
        self.error = ""
        self._stream = hosts.connect(uri).newStream(0)
        open_stream(self._stream)  # raises libvirtError if the domain has no such port
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

    def close(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for the copy to end once the domain is gone."""
        self.join(timeout)
        if self.is_alive():
            log.debug("%s: stream still open after the domain ended", self.what)


def open_streams(uri: str, dom: Any, console: Path,
                 channels: list[tuple[Path, str]]) -> list[StreamCopy]:
    """Start copying ``dom``'s console into ``console`` and each (file, port) channel."""
    copies = [StreamCopy(uri, "console", lambda s: dom.openConsole(None, s, 0), console)]
    for path, port in channels:
        copies.append(StreamCopy(uri, port, lambda s, p=port: dom.openChannel(p, s, 0), path))
    for c in copies:
        c.start()
    return copies
