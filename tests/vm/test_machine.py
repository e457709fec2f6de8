"""The Machine API against a real boot of the reference image (one shared VM, TCG).

Boot-free failures (launch errors, bad input) use a blank disk and cost no boot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from kolapy.enums import Accel
from kolapy.errors import BadInputError, BootError, CommandFailedError
from kolapy.machine import process
from kolapy.machine.qemu import QemuMachine
from kolapy.machine.spec import MachineSpec
from kolapy.transport.ssh import SSHConnection, SSHKeyPair
from tests.vm.conftest import sha256

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> SSHKeyPair:
    return SSHKeyPair.generate(tmp_path_factory.mktemp("ssh"))


@pytest.fixture(scope="module")
def image_checksum(ref_image: Path) -> Iterator[str]:
    """The base image's checksum before the module's machines, re-checked after them."""
    before = sha256(ref_image)
    yield before
    assert sha256(ref_image) == before, "the base image was written"


@pytest.fixture(scope="module")
def machine(
    ref_image: Path, ssh_key: SSHKeyPair, image_checksum: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[QemuMachine]:
    spec = MachineSpec(image=ref_image, name="api")
    with QemuMachine(spec, workdir=tmp_path_factory.mktemp("api"), ssh_key=ssh_key,
                     accel=Accel.AUTO) as m:
        yield m
    assert process.live_pids() == []


def test_run_succeed_fail(machine: QemuMachine) -> None:
    assert machine.succeed("echo hello") == "hello\n"
    assert machine.succeed(["printf", "%s|", "a b", "$HOME"]) == "a b|$HOME|"
    res = machine.run("echo out; echo err >&2; exit 7")
    assert (res.rc, res.stdout, res.stderr) == (7, "out\n", "err\n")
    assert "No such file" in machine.fail("ls /nonexistent")
    assert machine.succeed("whoami").strip() == "nest"


def test_command_failed_error_carries_command_rc_and_stderr(machine: QemuMachine) -> None:
    with pytest.raises(CommandFailedError) as exc:
        machine.succeed("echo before; cat /nope")
    e = exc.value
    assert e.command == "echo before; cat /nope"
    assert e.rc == 1
    assert e.stdout == "before\n"
    assert "/nope" in e.stderr
    assert "exit code 1" in str(e)


def test_copy_to_and_from(machine: QemuMachine, tmp_path: Path) -> None:
    payload = os.urandom(300_000) + b"\x00end"
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    machine.copy_to(src, "/tmp/kolapy-copy.bin")
    remote_sum = machine.succeed("sha256sum /tmp/kolapy-copy.bin").split()[0]
    assert remote_sum == __import__("hashlib").sha256(payload).hexdigest()
    back = tmp_path / "back.bin"
    machine.copy_from("/tmp/kolapy-copy.bin", back)
    assert back.read_bytes() == payload


def test_wait_for_unit_and_port(machine: QemuMachine) -> None:
    machine.wait_for_unit("ssh.service")
    machine.wait_for_open_port(22)
    machine.wait_for_file("/etc/os-release")


def test_wait_for_unit_fails_fast_on_failed_unit(machine: QemuMachine) -> None:
    machine.succeed("sudo systemd-run --unit kolapy-doomed.service /bin/false")
    start = time.monotonic()
    with pytest.raises(CommandFailedError, match="kolapy-doomed"):
        machine.wait_for_unit("kolapy-doomed.service", timeout=120)
    assert time.monotonic() - start < 30


def test_console_wait_and_log_slices(machine: QemuMachine) -> None:
    machine.wait_for_console(r"login:", timeout=30)
    mark = machine.log_mark()
    token = f"kolapy-slice-{time.monotonic_ns()}"
    machine.succeed(f"echo {token}-console | sudo tee /dev/ttyS0 >/dev/null")
    machine.succeed(["logger", "-t", "kolapy-test", f"{token}-journal"])
    machine.wait_for_console(f"{token}-console", timeout=30)
    deadline = time.monotonic() + machine.scaled(20)
    while True:
        console, journal = machine.logs_since(mark)
        if f"{token}-journal" in journal or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert f"{token}-console" in console
    assert f"kolapy-test: {token}-journal" in journal or f"{token}-journal" in journal
    later = machine.log_mark()
    assert token not in machine.logs_since(later)[0]


def test_interactive_console(machine: QemuMachine) -> None:
    with machine.interactive_console() as con:
        con.sendline("")
        con.expect(r"login:", timeout=machine.scaled(10))


def test_journal_helper(machine: QemuMachine) -> None:
    assert "ssh" in machine.journal(unit="ssh.service").lower()


def test_ssh_command_works_with_openssh(machine: QemuMachine) -> None:
    if shutil.which("ssh") is None:
        pytest.skip("OpenSSH client (ssh) is not installed")
    cmd = [*machine.ssh_command().split(), "-o", "BatchMode=yes", "cat /etc/os-release"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ID=" in out.stdout
    assert "127.0.0.1" in machine.ssh_command() and "nest@" in machine.ssh_command()


def test_host_key_is_pinned(machine: QemuMachine, ssh_key: SSHKeyPair, tmp_path: Path) -> None:
    assert machine.host_key is not None
    served = machine.succeed("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
    assert served == machine.host_key.public_key_base64
    impostor = SSHKeyPair.generate(tmp_path, "other")
    conn = SSHConnection("127.0.0.1", machine.ssh_port, "nest", ssh_key, impostor.public_openssh)
    with pytest.raises(paramiko.BadHostKeyException):
        conn.connect(deadline=30, attempt_timeout=10)


def test_write_artifacts(machine: QemuMachine, tmp_path: Path) -> None:
    machine.write_artifacts(tmp_path)
    assert "login:" in (tmp_path / "console.txt").read_text()
    assert "systemd" in (tmp_path / "journal.txt").read_text()
    ign = (tmp_path / "ignition.json").read_text()
    assert "/etc/ssh/ssh_host_ed25519_key" in ign and "kolapy-journal.service" in ign
    cfg = (tmp_path / "ssh-config").read_text()
    assert f"Port {machine.ssh_port}" in cfg and "User nest" in cfg


def test_reboot_proves_new_boot(machine: QemuMachine) -> None:
    before = machine.boot_id
    machine.reboot()
    assert machine.boot_id != before
    assert machine.succeed("systemctl is-system-running").strip() == "running"
    machine.wait_for_console(r"login:", timeout=30)  # from the new boot's console


# ---- no boot needed ----------------------------------------------------------------------


@pytest.fixture
def blank_image(tmp_path: Path) -> Path:
    raw = tmp_path / "blank.raw"
    with raw.open("wb") as f:
        f.truncate(16 * 1024 * 1024)
    subprocess.run(["sfdisk", "-q", str(raw)], input="label: gpt\n,8M,L\n", text=True,
                   check=True)
    return raw


def test_launch_failure_carries_command_and_stderr(blank_image: Path, ssh_key: SSHKeyPair,
                                                   tmp_path: Path) -> None:
    spec = MachineSpec(image=blank_image, memory_mib=64 * 1024 * 1024, name="toobig")
    m = QemuMachine(spec, workdir=tmp_path / "vm", ssh_key=ssh_key, accel=Accel.TCG)
    with pytest.raises(BootError) as exc:
        m.start()
    text = str(exc.value)
    assert "QEMU failed to start" in text and "qemu-system-x86_64" in text
    assert "-m 67108864" in text
    m.stop()
    assert m.pid is None
    assert subprocess.run(["pgrep", "-f", f"qemu-system.*{tmp_path}/vm/"]).returncode == 1


def test_bad_input_starts_no_vm(ssh_key: SSHKeyPair, tmp_path: Path) -> None:
    m = QemuMachine(MachineSpec(image=tmp_path / "missing.qcow2"), workdir=tmp_path / "vm",
                    ssh_key=ssh_key, accel=Accel.TCG)
    with pytest.raises(BadInputError, match=r"missing\.qcow2 does not exist"):
        m.start()
    assert m.pid is None and not (tmp_path / "vm" / "disk0.qcow2").exists()


def test_invalid_ignition_starts_no_vm(blank_image: Path, ssh_key: SSHKeyPair,
                                       tmp_path: Path) -> None:
    spec = MachineSpec(image=blank_image, ignition={"ignition": {"version": "9.9.9"}})
    m = QemuMachine(spec, workdir=tmp_path / "vm", ssh_key=ssh_key, accel=Accel.TCG)
    with pytest.raises(BadInputError) as exc:
        m.start()
    assert "\n" not in str(exc.value) and "version" in str(exc.value)
    assert m.pid is None


def test_base_image_untouched_by_overlay(blank_image: Path, ssh_key: SSHKeyPair,
                                         tmp_path: Path) -> None:
    before = sha256(blank_image)
    m = QemuMachine(MachineSpec(image=blank_image, disk_size_gib=1), workdir=tmp_path / "vm",
                    ssh_key=ssh_key, accel=Accel.TCG)
    m.start()
    try:
        info = subprocess.run(["qemu-img", "info", "-U", str(m.paths.overlay)],
                              capture_output=True, text=True, check=True).stdout
        assert f"backing file: {blank_image}" in info and "virtual size: 1 GiB" in info
    finally:
        m.stop()
    assert sha256(blank_image) == before


def test_taken_port_is_retried(blank_image: Path, ssh_key: SSHKeyPair, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from kolapy.machine import qemu as qemu_mod

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = iter([taken])
        real = qemu_mod.free_port
        monkeypatch.setattr(qemu_mod, "free_port", lambda: next(ports, None) or real())
        m = QemuMachine(MachineSpec(image=blank_image), workdir=tmp_path / "vm",
                        ssh_key=ssh_key, accel=Accel.TCG)
        m.start()
        try:
            assert m.ssh_port != taken
            assert f"hostfwd=tcp:127.0.0.1:{m.ssh_port}-:22" in " ".join(m.argv)
        finally:
            m.stop()


def test_large_output_is_complete(machine: QemuMachine) -> None:
    # sshd may send the exit status before the last output; none of it may be lost.
    out = machine.succeed("seq 1 200000")
    assert out.endswith("\n199999\n200000\n")
    assert len(out.splitlines()) == 200000


def test_background_child_holding_stdout_does_not_hang(machine: QemuMachine) -> None:
    start = time.monotonic()
    assert machine.succeed("(sleep 60 &) ; echo started").strip() == "started"
    assert time.monotonic() - start < machine.scaled(10)
