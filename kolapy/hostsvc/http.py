"""A read-only HTTP file server on a unix socket, for guests (ostree remotes, configs)."""

from __future__ import annotations

import functools
import http.server
import socketserver
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    log_path: Path
    requests: list[str]
    lock: threading.Lock

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (guest rebooted, connection reset) goes to the log,
        # not as a traceback on the test run's stderr.
        import sys

        exc = sys.exc_info()[1]
        with self.lock, self.log_path.open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} connection error: {exc!r}\n")


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: ostree fetches many small objects

    def address_string(self) -> str:
        return "guest"  # a unix-socket peer has no address

    def log_message(self, format: str, *args: Any) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {format % args}"
        with self.server.lock:
            self.server.requests.append(line)
            with self.server.log_path.open("a") as f:
                f.write(line + "\n")

    def list_directory(self, path: str | Path) -> Any:
        self.send_error(403, "directory listing is off")
        return None


class HttpService:
    """Serve ``directory`` read-only (GET/HEAD) on a unix socket; log every request.

    Use as a context manager, or call :meth:`start` and :meth:`close`.  Attach
    it to a machine with :func:`kolapy.hostsvc.attach` (guests reach it at
    ``http://10.0.2.100:<port>/``).  The log has one line per request:
    time, request line, status and size.
    """

    def __init__(self, directory: Path | str, log_path: Path | str) -> None:
        self.directory = Path(directory).absolute()
        self.log_path = Path(log_path)
        self._tmp: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def socket_path(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("HttpService is not started")
        return Path(self._tmp) / "http.sock"

    @property
    def requests(self) -> list[str]:
        """The log lines so far (a copy)."""
        if self._server is None:
            return []
        with self._server.lock:
            return list(self._server.requests)

    def start(self) -> HttpService:
        if not self.directory.is_dir():
            from kolapy.errors import BadInputError

            raise BadInputError(f"{self.directory}: not a directory to serve")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        # Short path: unix socket names are limited to 108 bytes.
        self._tmp = tempfile.mkdtemp(prefix="kolapy-http-")
        handler = functools.partial(_Handler, directory=str(self.directory))
        server = _Server(str(self.socket_path), handler)
        server.log_path, server.requests, server.lock = self.log_path, [], threading.Lock()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2},
            name="kolapy-http", daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and remove the socket (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> HttpService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
