"""QemuMachine pieces that need no QEMU: paths, ssh_command, artifacts, fast-fail checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kolapy.enums import Accel
from kolapy.errors import BootError, EmergencyError
from kolapy.machine.base import LogMark
from kolapy.machine.qemu import QemuMachine
from kolapy.machine.spec import MachineSpec
from kolapy.transport.ssh import SSHKeyPair


@pytest.fixture
def key(tmp_path: Path) -> SSHKeyPair:
    return SSHKeyPair.generate(tmp_path / "ssh")


def _machine(tmp_path: Path, key: SSHKeyPair, workdir: Path | None = None) -> QemuMachine:
    return QemuMachine(MachineSpec(image=Path("/nonexistent.qcow2"), name="m1"),
                       workdir=workdir or tmp_path / "vm", ssh_key=key, accel=Accel.TCG,
                       timeout_scale=2.0)


def test_ssh_command_is_ready_to_paste(tmp_path, key):
    m = _machine(tmp_path, key)
    m.ssh_port = 40022
    assert m.ssh_command() == (
        f"ssh -i {key.private_path} -p 40022 -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null nest@127.0.0.1"
    )
    assert m.scaled(10) == 20
    assert m.default_timeout == 120
    assert not m.is_running()


def test_long_workdir_puts_sockets_in_a_short_dir(tmp_path, key):
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    m = _machine(tmp_path, key, workdir=deep)
    m._setup_sockdir()
    try:
        assert len(str(m.paths.console_socket)) < 108
        assert len(str(m.paths.qmp_socket)) < 108
        assert m.paths.console_log.parent == deep  # logs stay in the workdir
    finally:
        m.stop()
    assert not m.paths.sockdir.exists()


def test_logs_and_artifacts(tmp_path, key):
    m = _machine(tmp_path, key)
    m.paths.workdir.mkdir(parents=True)
    m.paths.console_log.write_bytes(b"early boot\r\n")
    entry = {"__REALTIME_TIMESTAMP": "1700000000000000", "SYSLOG_IDENTIFIER": "sshd",
             "_PID": "7", "MESSAGE": "Server listening"}
    m.paths.journal.write_text(json.dumps(entry) + "\n")
    mark = m.log_mark()
    assert mark == LogMark(len(b"early boot\r\n"), m.paths.journal.stat().st_size)
    with m.paths.console_log.open("ab") as f:
        f.write(b"later\r\n")
    with m.paths.journal.open("a") as f:
        f.write(json.dumps({**entry, "MESSAGE": "Accepted publickey"}) + "\n")
    console, journal = m.logs_since(mark)
    assert console == "later\n"
    assert "Accepted publickey" in journal and "Server listening" not in journal
    m.ignition = {"ignition": {"version": "3.3.0"}}
    m.ssh_port = 40022
    out = tmp_path / "art"
    m.write_artifacts(out)
    assert (out / "console.txt").read_text() == "early boot\nlater\n"
    assert "sshd[7]: Server listening" in (out / "journal.txt").read_text()
    assert json.loads((out / "ignition.json").read_text())["ignition"]["version"] == "3.3.0"
    ssh_config = (out / "ssh-config").read_text()
    assert "Host m1\n" in ssh_config and "Port 40022" in ssh_config
    assert not (out / "ignition-journal.txt").exists()


class _DeadProc:
    pid = 1
    returncode = 1

    def poll(self) -> int:
        return 1


class _LiveProc:
    pid = 1
    returncode = None

    def poll(self) -> None:
        return None


def test_check_alive_reports_qemu_exit_with_stderr(tmp_path, key):
    m = _machine(tmp_path, key)
    m.paths.workdir.mkdir(parents=True)
    m.paths.qemu_stderr.write_text("qemu-system-x86_64: cannot set up guest memory\n")
    m._proc = _DeadProc()  # type: ignore[assignment]
    with pytest.raises(BootError, match=r"QEMU exited with code 1: .*guest memory"):
        m.check_alive()
    m._proc = None


def test_check_alive_emergency_journal(tmp_path, key):
    m = _machine(tmp_path, key)
    m.paths.workdir.mkdir(parents=True)
    lines = [{"SYSLOG_IDENTIFIER": "ignition", "_PID": "9",
              "MESSAGE": "Ignition failed: config is not valid"}, {}]
    m.paths.emergency_journal.write_text("".join(json.dumps(e) + "\n" for e in lines))
    m._proc = _LiveProc()  # type: ignore[assignment]
    with pytest.raises(EmergencyError, match="initramfs reported an emergency") as exc:
        m.check_alive()
    assert "Ignition failed: config is not valid" in str(exc.value)
    assert "ignition[9]" in exc.value.journal
    m._proc = None


def test_check_alive_fatal_console_line(tmp_path, key):
    m = _machine(tmp_path, key)
    m.paths.workdir.mkdir(parents=True)
    m.paths.console_log.write_text("[  5.1] Kernel panic - not syncing: VFS: Unable to mount\n")
    m._proc = _LiveProc()  # type: ignore[assignment]
    with pytest.raises(EmergencyError, match="Kernel panic"):
        m.check_alive()
    m._proc = None
