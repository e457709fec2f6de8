"""The reference image honours the NestOS contract, checked with plain QEMU (not kolapy's
machine code): Ignition via fw_cfg, SSH as ``nest``, ostree, containers, BIOS + UEFI,
first boot only, and the initramfs emergency journal on the virtio port.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest

from kolapy.errors import TimeoutExpired
from kolapy.refimage import build_image, image_path, read_manifest
from kolapy.retry import retry

# One worker runs the whole module: later tests reuse earlier tests' disks.
pytestmark = [pytest.mark.vm, pytest.mark.xdist_group("refimage")]

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
JOURNAL_PORT = "com.nestos.ignition.journal"
BOOT_DEADLINE = 600.0  # TCG on a 2-core host shared with other VMs (idle: ~30-60 s)

HELLO_UNIT = """[Unit]
Description=kolapy test unit
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo ran > /run/hello-ran'
[Install]
WantedBy=multi-user.target
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(pubkey: str) -> dict[str, object]:
    return {
        "ignition": {"version": "3.3.0"},
        "passwd": {"users": [{"name": "nest", "sshAuthorizedKeys": [pubkey]}]},
        "storage": {
            "files": [
                {"path": "/etc/kolapy-hello", "mode": 0o644,
                 "contents": {"source": "data:,hello%20from%20ignition"}},
                {"path": "/var/lib/kolapy-once", "mode": 0o644,
                 "contents": {"source": "data:,once"}},
            ]
        },
        "systemd": {"units": [{"name": "kolapy-hello.service", "enabled": True,
                               "contents": HELLO_UNIT}]},
    }


@dataclass
class Vm:
    """One plain QEMU process with a serial log and an SSH port forward."""

    overlay: Path
    config: Path
    workdir: Path
    key: paramiko.PKey
    uefi: bool = False
    name: str = "vm"
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    console: Path = field(init=False)
    journal: Path = field(init=False)

    def __post_init__(self) -> None:
        self.console = self.workdir / f"{self.name}-console.txt"
        self.journal = self.workdir / f"{self.name}-journal.json"

    def command(self) -> list[str]:
        self.port = _free_port()
        argv = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048",
            "-nodefaults", "-display", "none",
            "-machine", "q35" if self.uefi else "pc",
            "-drive", f"if=virtio,file={self.overlay},format=qcow2",
            "-fw_cfg", f"name=opt/com.coreos/config,file={self.config}",
            "-nic", f"user,model=virtio,restrict=on,"
                    f"hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-serial", f"file:{self.console}",
            "-device", "virtio-serial",
            "-chardev", f"file,id=ignj,path={self.journal}",
            "-device", f"virtserialport,chardev=ignj,name={JOURNAL_PORT}",
        ]
        if self.uefi:
            vars_copy = self.workdir / f"{self.name}-OVMF_VARS.fd"
            shutil.copy(OVMF_VARS, vars_copy)
            argv += [
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            ]
        return argv

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def ssh(self) -> paramiko.SSHClient:
        return retry(self.ssh_once, what=f"SSH to {self.name}", deadline=BOOT_DEADLINE,
                     attempt_timeout=20, interval=2,
                     retry_on=(OSError, paramiko.SSHException, EOFError))

    def ssh_once(self, bound: float) -> paramiko.SSHClient:
        """One SSH connection attempt bounded by ``bound`` seconds."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"QEMU exited: {err}")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect("127.0.0.1", port=self.port, username="nest", pkey=self.key,
                           timeout=bound, banner_timeout=bound, auth_timeout=bound,
                           allow_agent=False, look_for_keys=False)
        except BaseException:
            client.close()
            raise
        return client


def run(client: paramiko.SSHClient, cmd: str, timeout: float = 180) -> tuple[int, str]:
    """Run ``cmd``; return (exit code, stdout + stderr)."""
    _, out, err = client.exec_command(cmd, timeout=timeout)
    text = out.read().decode(errors="replace") + err.read().decode(errors="replace")
    return out.channel.recv_exit_status(), text


def check(client: paramiko.SSHClient, cmd: str, timeout: float = 180) -> str:
    rc, text = run(client, cmd, timeout)
    assert rc == 0, f"{cmd!r} exited {rc}:\n{text}"
    return text


def wait_running(client: paramiko.SSHClient) -> str:
    rc, state = run(client, "timeout 200 systemctl is-system-running --wait", timeout=220)
    if state.strip() != "running":
        _, failed = run(client, "systemctl --failed --no-legend")
        pytest.fail(f"system state {state.strip()!r} (rc {rc}); failed units:\n{failed}")
    return state


@contextlib.contextmanager
def booted(vm: Vm) -> Iterator[paramiko.SSHClient]:
    """Start ``vm``, yield an SSH client (time to SSH goes to TIMINGS); always kill QEMU."""
    start = time.monotonic()
    vm.start()
    client = None
    try:
        client = vm.ssh()
        seconds = time.monotonic() - start
        TIMINGS[vm.name] = seconds
        print(f"{vm.name}: SSH after {seconds:.1f} s")
        yield client
    except TimeoutExpired:
        pytest.fail(f"{vm.name}: no SSH; console tail:\n{vm.console_text()[-3000:]}")
    finally:
        if client is not None:
            client.close()
        vm.kill()


#: systemd's "unit started" message (SD_MESSAGE_UNIT_STARTED), as kola's basic queries it.
UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"
GROWFS_UNIT = "ignition-ostree-growfs.service"


def growfs_started(client: paramiko.SSHClient) -> list[dict[str, str]]:
    """The journal's "started" entries of the growfs unit, read as ``nest`` (as kola does)."""
    out = check(client, f"journalctl -o json MESSAGE_ID={UNIT_STARTED} UNIT={GROWFS_UNIT}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def check_nestos_contract(client: paramiko.SSHClient) -> None:
    """What kola's ``basic`` (coretest) needs of a NestOS guest, checked as user ``nest``."""
    groups = check(client, "id -nG").split()
    assert {"adm", "sudo", "systemd-journal", "wheel", "docker"} <= set(groups), groups
    # The SSH user reads the system journal: kernel and PID 1 messages, no permission hint.
    rc, text = run(client, "journalctl -b --no-pager -q")
    assert rc == 0 and "insufficient permissions" not in text, text[-2000:]
    assert "Linux version" in text, text[:2000]
    assert "systemd[1]" in text, text[:2000]
    # Persistent journal (kola reads the first boot's units there).
    check(client, "test -d /var/log/journal/$(cat /etc/machine-id)")
    # kola's D-Bus check runs gdbus as the user: RestartUnit is refused, GetAll answers.
    check(client, "command -v gdbus")
    rc, text = run(client, "gdbus call --system --dest org.freedesktop.systemd1 "
                           "--object-path /org/freedesktop/systemd1 --method "
                           "org.freedesktop.systemd1.Manager.RestartUnit ssh.service replace")
    assert rc != 0 and re.search(r"AccessDenied|InteractiveAuthorizationRequired", text), text
    check(client, "gdbus call --system --dest org.freedesktop.systemd1 --object-path "
                  "/org/freedesktop/systemd1/unit/ssh_2eservice --method "
                  "org.freedesktop.DBus.Properties.GetAll org.freedesktop.systemd1.Unit")
    # The root-growing unit under NestOS's name: one successful start in the journal.
    started = growfs_started(client)
    assert len(started) == 1, started
    assert started[0].get("JOB_RESULT") == "done", started[0]
    # kola's useradd check (a new administrator).
    check(client, "sudo useradd -p '*' -U -m kola-user1 -G sudo && id kola-user1")


def _overlay(base: Path, path: Path, size: str | None = None) -> Path:
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path)]
    subprocess.run([*argv, *([size] if size else [])], check=True)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("refimage")


@pytest.fixture(scope="module")
def key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate(bits=256)


@pytest.fixture(scope="module")
def config_file(workdir: Path, key: paramiko.PKey) -> Path:
    path = workdir / "config.ign"
    path.write_text(json.dumps(_config(f"{key.get_name()} {key.get_base64()}")))
    return path


TIMINGS: dict[str, float] = {}
STATE: dict[str, str] = {}


@pytest.fixture(scope="module")
def bios_disk(ref_image: Path, workdir: Path) -> Path:
    return _overlay(ref_image, workdir / "bios.qcow2", "10G")


def test_manifest_and_size(ref_image: Path) -> None:
    """Acceptance 5 (and the build time of acceptance 1)."""
    assert ref_image.stat().st_size < 1.5 * 10**9
    manifest = read_manifest()
    assert manifest is not None
    for key in ("recipe_hash", "arch", "packages", "ostree_commit", "qcow2_size",
                "build_seconds", "kernel_version"):
        assert key in manifest, key
    assert manifest["arch"] == "x86_64"
    assert manifest["qcow2_size"] == ref_image.stat().st_size
    assert len(str(manifest["ostree_commit"])) == 64
    names = {p["name"] for p in manifest["packages"]}  # type: ignore[union-attr]
    assert {"ignition", "ostree", "podman", "docker.io", "openssh-server"} <= names
    assert float(manifest["build_seconds"]) < 600  # type: ignore[arg-type]


def test_cached_build_returns_fast(ref_image: Path) -> None:
    """Acceptance 1: a second build call is a cache hit."""
    start = time.monotonic()
    assert build_image() == ref_image
    assert image_path() == ref_image
    assert time.monotonic() - start < 2


def test_bios_first_boot(bios_disk: Path, config_file: Path, workdir: Path,
                         key: paramiko.PKey) -> None:
    """Acceptance 2 + 3 (BIOS): Ignition's user, file and unit; ostree; containers.

    The same disk boots again under UEFI in test_uefi_second_boot (one boot fewer
    than a separate UEFI machine; TCG boots are the cost of this module)."""
    vm = Vm(bios_disk, config_file, workdir, key, name="bios1")
    with booted(vm) as ssh:
        wait_running(ssh)
        assert check(ssh, "cat /etc/kolapy-hello") == "hello from ignition"
        assert check(ssh, "systemctl is-enabled kolapy-hello.service").strip() == "enabled"
        assert check(ssh, "cat /run/hello-ran").strip() == "ran"
        status = check(ssh, "ostree admin status")
        assert "* debian " in status, status
        rc, out = run(ssh, "touch /usr/kolapy-rw-probe")
        assert rc != 0 and "Read-only file system" in out, out
        check(ssh, "sudo -n true")
        assert "ignition.firstboot" in check(ssh, "cat /proc/cmdline")
        # kola's badness patterns stay out of the journal (soft lockups, cycles, crashes).
        rc, bad = run(ssh, "sudo journalctl -b --no-pager | grep -E "
                           "'Ordering cycle found|soft lockup|=11/SEGV|[Cc]ore dump|oom-killer'")
        assert rc == 1, bad
        # The root grew to the 10G disk on first boot.
        size = int(check(ssh, "findmnt -bno SIZE /sysroot"))
        assert size > 8 * 10**9, size
        check_nestos_contract(ssh)
        # Host keys are made on the machine, not baked into the image.
        assert check(ssh, "ls /etc/ssh/ssh_host_ed25519_key.pub")
        # Containers from a locally made scratch image (no registry).
        check(ssh, "mkdir -p /tmp/bb/bin && cp /bin/busybox /tmp/bb/bin/")
        check(ssh, "tar -C /tmp/bb -c . | sudo podman import - localhost/bb")
        assert check(ssh, "sudo podman run --rm --network none localhost/bb "
                          "/bin/busybox echo podman-ok").strip() == "podman-ok"
        check(ssh, "tar -C /tmp/bb -c . | sudo docker import - kolapy/bb")
        assert check(ssh, "sudo docker run --rm --network none kolapy/bb "
                          "/bin/busybox echo docker-ok").strip() == "docker-ok"
        # Prove "no second Ignition": remove what Ignition wrote.
        check(ssh, "sudo rm /var/lib/kolapy-once")
        # A second ostree commit made from the booted one, deployed for the next boot.
        csum = check(ssh, "sudo ostree rev-parse kolapy/x86_64/ref").strip()
        check(ssh, f"sudo ostree commit -b local --tree ref={csum} "
                   "--add-metadata-string version=kolapy-test-2")
        STATE["new_commit"] = check(ssh, "sudo ostree rev-parse local").strip()
        check(ssh, "sudo ostree admin deploy local")
        check(ssh, "sync")
        run(ssh, "sudo systemctl --no-block poweroff")
        assert vm.proc is not None
        vm.proc.wait(timeout=120)


def test_uefi_second_boot(bios_disk: Path, config_file: Path, workdir: Path,
                          key: paramiko.PKey) -> None:
    """Acceptance 3: UEFI boots the same disk; the second boot does not run Ignition
    and boots the deployment made on the first boot."""
    if "new_commit" not in STATE:
        pytest.skip("needs test_bios_first_boot's machine (run the whole module)")
    if not OVMF_CODE.exists():
        pytest.skip(f"{OVMF_CODE} missing (apt-get install ovmf)")
    vm = Vm(bios_disk, config_file, workdir, key, uefi=True, name="uefi2")
    with booted(vm) as ssh:
        wait_running(ssh)
        check(ssh, "test -d /sys/firmware/efi")
        assert "ignition.firstboot" not in check(ssh, "cat /proc/cmdline")
        rc, _ = run(ssh, "test -e /var/lib/kolapy-once")
        assert rc != 0, "Ignition ran again: /var/lib/kolapy-once came back"
        booted_line = check(ssh, "ostree admin status | grep '^\\* '")
        assert STATE["new_commit"] in booted_line, booted_line
        # The journal is persistent: the first boot is still there, and its growfs
        # entry is still the only one (the unit runs on the first boot only).
        boots = check(ssh, "journalctl --list-boots --no-pager").strip().splitlines()
        assert len(boots) >= 2, boots
        assert len(growfs_started(ssh)) == 1
        # Rollback as documented (ostree 2022.7 has no set-default): a one-shot
        # GRUB next_entry=1 boots the previous deployment; test_bios_rollback boots it.
        check(ssh, "printf '# GRUB Environment Block\\nnext_entry=1\\n' "
                   "| sudo dd of=/boot/grub/grubenv conv=notrunc status=none && sync")
        STATE["rollback_armed"] = "yes"
        run(ssh, "sudo systemctl --no-block poweroff")
        assert vm.proc is not None
        vm.proc.wait(timeout=180)
    assert "Ignition (files)" not in vm.console_text()


def test_bios_rollback(bios_disk: Path, config_file: Path, workdir: Path,
                       key: paramiko.PKey) -> None:
    """The documented rollback: GRUB's one-shot next_entry boots the previous deployment."""
    if "rollback_armed" not in STATE:
        pytest.skip("needs test_uefi_second_boot's machine (run the whole module)")
    vm = Vm(bios_disk, config_file, workdir, key, name="bios3")
    with booted(vm) as ssh:
        booted_line = check(ssh, "ostree admin status | grep '^\\* '")
        assert STATE["new_commit"] not in booted_line, booted_line
        # GRUB cleared the one-shot entry, so the next boot is the default again.
        assert "next_entry=\n" in check(ssh, "head -c 60 /boot/grub/grubenv")
        wait_running(ssh)


def test_invalid_config_emergency(ref_image: Path, workdir: Path, key: paramiko.PKey) -> None:
    """Acceptance 4: an invalid config ends in the initramfs emergency, journal on virtio."""
    bad = workdir / "bad.ign"
    bad.write_text('{"ignition": {"version": "3.3.0"}, "storage": {"files": '
                   '[{"path": "relative/path"}]}}')
    disk = _overlay(ref_image, workdir / "bad.qcow2")
    vm = Vm(disk, bad, workdir, key, name="bad")
    vm.start()
    try:
        def journal_done(_: float) -> str | None:
            text = vm.journal.read_text(errors="replace") if vm.journal.exists() else ""
            return text if text.rstrip().endswith("{}") else None

        try:
            text = retry(journal_done, what="the emergency journal on the virtio port",
                         deadline=BOOT_DEADLINE, attempt_timeout=5, interval=1)
        except TimeoutExpired:
            pytest.fail(f"no journal; console tail:\n{vm.console_text()[-3000:]}")
    finally:
        vm.kill()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines[-1] == {}
    messages = "\n".join(str(e.get("MESSAGE", "")) for e in lines[:-1])
    assert "Ignition failed: config is not valid" in messages, messages[-3000:]
    assert "ignition-fetch-offline.service: Triggering OnFailure=" in messages

