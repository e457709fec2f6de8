"""SSH keys: fresh ed25519 pairs that both paramiko and OpenSSH accept."""

from __future__ import annotations

import shutil
import stat
import subprocess

import paramiko
import pytest

from kolapy.transport.ssh import SSHKeyPair


def test_generate_writes_private_0600_and_public(tmp_path):
    pair = SSHKeyPair.generate(tmp_path / "ssh")
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    assert pair.public_openssh.startswith("ssh-ed25519 ")
    assert pair.public_openssh.endswith(" kolapy")
    pub = (tmp_path / "ssh" / "id_ed25519.pub").read_text().strip()
    assert pub == pair.public_openssh
    assert pair.private_openssh.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_keys_are_fresh(tmp_path):
    a = SSHKeyPair.generate(tmp_path / "a")
    b = SSHKeyPair.generate(tmp_path / "b")
    assert a.public_openssh != b.public_openssh


def test_paramiko_loads_it_and_public_matches(tmp_path):
    pair = SSHKeyPair.generate(tmp_path)
    key = pair.pkey()
    assert isinstance(key, paramiko.Ed25519Key)
    assert key.get_base64() == pair.public_key_base64
    assert SSHKeyPair.load(pair.private_path) == pair


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_openssh_accepts_the_private_key(tmp_path):
    pair = SSHKeyPair.generate(tmp_path)
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(pair.private_path)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[:2] == pair.public_openssh.split()[:2]


class _ClosedChannel:
    """A paramiko channel whose connection dropped: closed, no exit status sent."""

    eof_received = True

    def recv_ready(self) -> bool:
        return False

    def recv_stderr_ready(self) -> bool:
        return False

    def exit_status_ready(self) -> bool:
        return True

    def recv_exit_status(self) -> int:
        return -1


def test_cut_connection_is_a_transport_error_not_a_failed_command():
    import time

    import pytest

    from kolapy.errors import TransportError
    from kolapy.transport.ssh import _collect

    with pytest.raises(TransportError, match="closed during command 'sleep 30'"):
        _collect(_ClosedChannel(), "sleep 30", time.monotonic() + 5, 5)  # type: ignore[arg-type]
