"""A real container registry (Debian's ``docker-registry``, distribution v2) for guests.

It listens on a unix socket only (reached by guests through the machine's guest
forward, :mod:`kolapy.hostsvc.forward`), keeps its storage in a private
directory, and runs as a child tied to this process (killed with it, even by
SIGKILL; see :mod:`kolapy.machine.process`).
"""

from __future__ import annotations

import http.client
import shutil
import socket
import tempfile
import time
from pathlib import Path

from kolapy.errors import BadInputError, InfraError
from kolapy.machine import process

BINARY = "docker-registry"
"""Debian's name for the distribution registry binary (package ``docker-registry``)."""

_CONFIG = """\
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  net: unix
  addr: {socket}
"""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def unix_get(socket_path: Path, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url`` from an HTTP server on a unix socket; (status, body)."""
    conn = _UnixHTTPConnection(str(socket_path), timeout)
    try:
        conn.request("GET", url)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class RegistryService:
    """A distribution v2 registry on a unix socket; its log goes to ``log_path``.

    Use as a context manager, or :meth:`start` / :meth:`close`.  Guests see it at
    ``10.0.2.100:5000`` once attached (:func:`kolapy.hostsvc.attach`); it speaks
    plain HTTP, so the guest's engine must treat it as an insecure registry.
    """

    def __init__(self, log_path: Path | str, start_timeout: float = 30.0) -> None:
        self.log_path = Path(log_path)
        self.start_timeout = start_timeout
        self._tmp: Path | None = None
        self._proc = None

    @property
    def socket_path(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("RegistryService is not started")
        return self._tmp / "registry.sock"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def catalog(self) -> list[str]:
        """Repository names the registry holds (``GET /v2/_catalog``)."""
        import json

        status, body = unix_get(self.socket_path, "/v2/_catalog")
        if status != 200:
            raise InfraError(f"registry catalog: HTTP {status}: {body[:200]!r}")
        return list(json.loads(body).get("repositories") or [])

    def start(self) -> RegistryService:
        binary = shutil.which(BINARY)
        if binary is None:
            raise BadInputError(
                f"'{BINARY}' not found: install Debian's docker-registry package (setup.sh does)"
            )
        self._tmp = Path(tempfile.mkdtemp(prefix="kolapy-reg-"))
        storage = self._tmp / "storage"
        storage.mkdir()
        config = self._tmp / "config.yml"
        config.write_text(_CONFIG.format(storage=storage, socket=self.socket_path))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = process.launch([binary, "serve", str(config)], stderr=self.log_path)
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        last = "no socket yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise InfraError(
                    f"{BINARY} exited with {self._proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-800:]}"
                )
            if self.socket_path.exists():
                try:
                    status, _ = unix_get(self.socket_path, "/v2/", timeout=2)
                    if status == 200:
                        return
                    last = f"HTTP {status}"
                except OSError as exc:
                    last = str(exc)
            time.sleep(0.1)
        raise InfraError(f"{BINARY} did not answer within {self.start_timeout:.0f} s ({last})")

    def close(self) -> None:
        """Stop the registry and delete its storage (idempotent)."""
        if self._proc is not None:
            process.terminate(self._proc)
            self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> RegistryService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
