"""SSH to a machine with paramiko: fresh ed25519 keys, a pinned host key, bounded commands."""

from __future__ import annotations

import logging
import os
import select
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kolapy.errors import TimeoutExpired, TransportError
from kolapy.result import CommandResult
from kolapy.retry import retry
from kolapy.transport.output import OutputSink, OutputSpool

log = logging.getLogger(__name__)
# While a guest boots, every refused attempt makes paramiko's transport thread log a
# traceback at ERROR; the retry loop reports the real outcome, so keep only fatal ones.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

# Host key types the client may accept besides ed25519: none, so the pinned key must be used.
_OTHER_HOST_KEY_TYPES = [
    "ssh-rsa", "rsa-sha2-256", "rsa-sha2-512", "ssh-dss",
    "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
]


_QUIET_AFTER_EXIT = 2.0
BANNER_TIMEOUT = 8.0
"""Seconds to wait for the server's banner in one connection attempt."""


@dataclass(frozen=True)
class SSHKeyPair:
    """An ed25519 key pair on disk: OpenSSH private key (0600) + ``.pub``."""

    private_path: Path
    public_openssh: str
    private_openssh: str

    @classmethod
    def generate(
        cls, directory: Path, name: str = "id_ed25519", comment: str = "kolapy"
    ) -> SSHKeyPair:
        """Create a fresh key pair in ``directory`` (usable by ``ssh -i``)."""
        directory.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()
        public = f"{public} {comment}"
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(private)
        os.chmod(path, 0o600)
        path.with_name(name + ".pub").write_text(public + "\n")
        return cls(path, public, private)

    @classmethod
    def load(cls, private_path: Path) -> SSHKeyPair:
        """Load a pair written by :meth:`generate`."""
        public = private_path.with_name(private_path.name + ".pub").read_text().strip()
        return cls(private_path, public, private_path.read_text())

    def pkey(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key_file(str(self.private_path))

    @property
    def public_key_base64(self) -> str:
        return self.public_openssh.split()[1]


class SSHConnection:
    """One SSH session to ``user@host:port``; reconnect after the guest reboots.

    ``host_key`` (an OpenSSH public key line) pins the server's ed25519 host key.
    """

    def __init__(
        self, host: str, port: int, user: str, key: SSHKeyPair, host_key: str | None = None
    ) -> None:
        self.host, self.port, self.user, self.key = host, port, user, key
        self.host_key = host_key
        self._client: paramiko.SSHClient | None = None

    @property
    def connected(self) -> bool:
        t = self._client.get_transport() if self._client else None
        return bool(t and t.is_active())

    def connect(
        self,
        *,
        deadline: float,
        attempt_timeout: float = 10.0,
        give_up: object = None,
        banner_timeout: float = BANNER_TIMEOUT,
    ) -> None:
        """Connect, retrying until ``deadline`` seconds; each attempt bounded.

        ``give_up`` is an optional callable run before each attempt; it raises to
        stop waiting (e.g. QEMU exited, initramfs emergency).  ``banner_timeout``
        bounds the wait for the server's first line; raise it (up to the attempt
        bound) once sshd is known to listen: a guest busy booting may need longer, and
        giving up only makes it fork another sshd for the retry.
        """
        self.close()

        def attempt(bound: float) -> paramiko.SSHClient:
            if callable(give_up):
                give_up()
            return self._connect_once(bound, banner_timeout)

        self._client = retry(
            attempt,
            what=f"SSH on {self.host}:{self.port}",
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            interval=0.5,
            retry_on=(OSError, paramiko.SSHException, EOFError),
            give_up_on=(paramiko.BadHostKeyException,),
        )

    def _connect_once(self, bound: float,
                      banner_timeout: float = BANNER_TIMEOUT) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.host_key:
            kind, b64 = self.host_key.split()[:2]
            # paramiko looks a host up as "host" on port 22, "[host]:port" elsewhere
            # (a libvirt machine on a libvirt network is reached on port 22).
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            client.get_host_keys().add(
                name, kind, paramiko.PKey.from_type_string(kind, _b64(b64))
            )
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(
                self.host, self.port, username=self.user, pkey=self.key.pkey(),
                # Before the guest's network is up, QEMU's user-mode stack accepts the TCP
                # connection and then stays silent: give up on the banner early and retry.
                timeout=bound, banner_timeout=min(bound, banner_timeout), auth_timeout=bound,
                channel_timeout=bound,
                allow_agent=False, look_for_keys=False,
                disabled_algorithms={"keys": _OTHER_HOST_KEY_TYPES} if self.host_key else None,
            )
        except paramiko.BadHostKeyException:
            client.close()
            raise
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client

    def execute(
        self, cmd: str, timeout: float, stdin: bytes | None = None, *,
        stdout: BinaryIO | None = None, spool: OutputSpool | None = None,
    ) -> CommandResult:
        """Run shell text ``cmd``; return its exit code and output (decoded, lenient).

        ``stdout``: a binary file that receives all of stdout as it arrives (the result's
        ``stdout`` is then empty).  ``spool``: where a stream longer than its cap goes
        (see :mod:`kolapy.transport.output`); without it output is held whole.
        """
        start = time.monotonic()
        out, err = spool.sinks() if spool is not None else (OutputSink(), OutputSink())
        if stdout is not None:
            out = OutputSink(file=stdout)
        try:
            rc = self._run(cmd, timeout, stdin, out, err)
        finally:
            out.close()
            err.close()
        return CommandResult(
            command=cmd, rc=rc, stdout=out.text(repr(cmd)), stderr=err.text(repr(cmd)),
            duration=time.monotonic() - start, stdout_file=out.path, stderr_file=err.path,
        )

    def execute_bytes(
        self, cmd: str, timeout: float, stdin: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        """Like :meth:`execute` but returns raw bytes, held whole (small transfers)."""
        out, err = OutputSink(), OutputSink()
        rc = self._run(cmd, timeout, stdin, out, err)
        return rc, out.bytes(), err.bytes()

    def _run(self, cmd: str, timeout: float, stdin: bytes | None,
             out: OutputSink, err: OutputSink) -> int:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise TransportError(f"SSH to {self.host}:{self.port} is not connected")
        try:
            chan = transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"SSH session on {self.host}:{self.port} failed: {exc}") from exc
        try:
            chan.exec_command(cmd)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            return _pump(chan, cmd, time.monotonic() + timeout, timeout, out, err)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"SSH command {cmd!r} broke: {exc}") from exc
        finally:
            chan.close()

    def put(self, local: Path, remote: str, timeout: float = 300.0) -> None:
        """Copy a local file to ``remote`` (written by the SSH user, no SFTP needed)."""
        data = Path(local).read_bytes()
        rc, _, err = self.execute_bytes(f"cat > {shlex.quote(remote)}", timeout, data)
        if rc != 0:
            raise TransportError(
                f"copying {local} to {remote} failed: {err.decode(errors='replace').strip()}"
            )

    def get(self, remote: str, local: Path, timeout: float = 300.0) -> None:
        """Copy ``remote`` from the machine to the local path (streamed, not held)."""
        local = Path(local)
        err = OutputSink()
        try:
            with local.open("wb") as f:
                rc = self._run(f"cat {shlex.quote(remote)}", timeout, None,
                               OutputSink(file=f), err)
        except BaseException:
            local.unlink(missing_ok=True)
            raise
        if rc != 0:
            local.unlink(missing_ok=True)
            raise TransportError(f"copying {remote} from the machine failed: "
                                 f"{err.text().strip()}")

    def close(self) -> None:
        """Close the session; safe to call twice."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _collect(
    chan: paramiko.Channel, cmd: str, end: float, timeout: float
) -> tuple[int, bytes, bytes]:
    """Exit code, stdout and stderr of a started command, held whole."""
    out, err = OutputSink(), OutputSink()
    rc = _pump(chan, cmd, end, timeout, out, err)
    return rc, out.bytes(), err.bytes()


def _pump(chan: paramiko.Channel, cmd: str, end: float, timeout: float,
          out: OutputSink, err: OutputSink) -> int:
    """Move a started command's output into ``out``/``err`` as it arrives; its exit code."""
    last_data = time.monotonic()
    while True:
        while chan.recv_ready():
            out.write(chan.recv(65536))
            last_data = time.monotonic()
        while chan.recv_stderr_ready():
            err.write(chan.recv_stderr(65536))
            last_data = time.monotonic()
        # sshd may send the exit status before the last output: done at EOF, or once
        # output has been quiet for a moment (a background child may hold stdout open).
        drained = not chan.recv_ready() and not chan.recv_stderr_ready()
        quiet = chan.eof_received or time.monotonic() - last_data > _QUIET_AFTER_EXIT
        if chan.exit_status_ready() and drained and quiet:
            rc = chan.recv_exit_status()
            if rc == -1:  # paramiko: the channel closed without an exit status
                raise TransportError(
                    f"SSH connection closed during command {cmd!r} (no exit status)")
            return rc
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutExpired(f"command {cmd!r} did not finish within {timeout:.0f}s")
        try:
            select.select([chan], [], [], min(remaining, 0.2))
        except (ValueError, OSError):
            time.sleep(0.05)


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
