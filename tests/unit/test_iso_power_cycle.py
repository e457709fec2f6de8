"""The live ISO install's cold start: the install phase runs with ``-no-reboot``, the
installed disk boots in a new QEMU without the ISO (no VM: argv as data, and a stub
QEMU that speaks enough QMP for the machine's launch)."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kolapy.enums import Accel
from kolapy.errors import BootError, TimeoutExpired
from kolapy.iso import scenarios
from kolapy.machine import process
from kolapy.machine.platform import ResolvedFirmware, load_platform
from kolapy.machine.preflight import PreflightResult
from kolapy.machine.qemu import QemuMachine
from kolapy.machine.qemu_command import MachinePaths, QemuCommand
from kolapy.machine.spec import MachineSpec
from kolapy.transport.ssh import SSHKeyPair

WORK = Path("/tmp/kolapy-w/m1")
INSTALL = MachineSpec(image=Path("/x.iso"), boot_media="iso", disk_size_gib=12.0,
                      no_reboot=True, name="m1")


def _argv(spec: MachineSpec) -> list[str]:
    return QemuCommand(spec, load_platform(spec.arch), Accel.TCG, MachinePaths.for_workdir(WORK),
                       2222, ResolvedFirmware(spec.firmware)).argv()


def _bootindex(argv: list[str], drive: str) -> str | None:
    for i, a in enumerate(argv):
        if a == "-device" and f"drive={drive}," in argv[i + 1] + ",":
            return argv[i + 1].rsplit("bootindex=", 1)[-1] if "bootindex=" in argv[i + 1] \
                else None
    return None


def test_install_phase_exits_on_reboot_and_boots_the_iso() -> None:
    argv = _argv(INSTALL)
    assert "-no-reboot" in argv
    line = " ".join(argv)
    assert f"file={WORK}/live.iso,format=raw,media=cdrom,readonly=on" in line
    assert _bootindex(argv, "livecd") == "2" and _bootindex(argv, "disk0") == "1"


def test_installed_boot_has_no_iso_and_keeps_disk_and_ports() -> None:
    second = scenarios.installed_spec(INSTALL)
    assert second.boot_media == "iso-ejected" and not second.no_reboot
    assert second.is_iso and not second.iso_attached
    argv = _argv(second)
    line = " ".join(argv)
    assert "-no-reboot" not in argv
    assert "live.iso" not in line and "cdrom" not in line and "scsi" not in line
    assert _bootindex(argv, "disk0") == "1"
    assert f"file={WORK}/disk0.qcow2,format=qcow2" in line  # the same overlay
    # The same completion port file, appended to (the live phase's lines stay).
    assert (f"file,id=isoport0,path={WORK}/port-testisocompletion.txt,append=on"
            in argv)
    assert "name=testisocompletion" in line
    assert f"logfile={WORK}/console.txt,logappend=on" in line


def test_plain_disk_machines_never_get_no_reboot() -> None:
    argv = _argv(MachineSpec(image=Path("/i.qcow2")))
    assert "-no-reboot" not in argv


class _Recorder:
    """A stand-in machine for run_install: records the calls, answers the checks."""

    name = "fake"

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.calls: list[Any] = []

    def start(self) -> None:
        self.calls.append("start")

    def wait_for_port(self, port: str, text: str, timeout: float) -> None:
        self.calls.append(("port", text, self.spec.boot_media))

    def wait_for_exit(self, timeout: float) -> None:
        self.calls.append("exit")

    def power_cycle(self, spec: MachineSpec) -> None:
        self.calls.append(("power_cycle", spec.boot_media, spec.no_reboot))
        self.spec = spec

    def wait_ready(self) -> None:
        self.calls.append("ready")

    def succeed(self, cmd: str) -> str:
        if cmd == "cat /proc/cmdline":
            return "root=x kolapy.installed=1"
        if cmd.startswith("findmnt"):
            return "/dev/vda4[/ostree/deploy/x]\n"
        return ""

    def fail(self, cmd: str) -> str:
        return ""


def test_run_install_waits_for_the_exit_then_cold_starts_the_disk() -> None:
    m = _Recorder(INSTALL)
    timings = scenarios.run_install(m)
    assert m.calls == [
        "start",
        ("port", scenarios.LIVE_OK, "iso"),
        "exit",
        ("power_cycle", "iso-ejected", False),
        ("port", scenarios.INSTALLED_OK, "iso-ejected"),
        "ready",
    ]
    assert {"live_s", "install_s", "first_boot_s", "ssh_ready_s", "total_s"} <= set(timings)


def test_run_install_refuses_a_machine_that_would_reset_in_place() -> None:
    m = _Recorder(replace(INSTALL, no_reboot=False))
    with pytest.raises(ValueError, match="no_reboot=True"):
        scenarios.run_install(m)
    assert m.calls == []


# ---- the machine's side, with a stub QEMU ---------------------------------------------------

_STUB = textwrap.dedent('''\
    """Stub QEMU: logs its argv, serves QMP; with -no-reboot it exits 0 after a moment
    (the guest's reboot), with "exit 3" in its name it exits 3 (a crash)."""
    import json, os, socket, sys, threading, time
    argv = sys.argv[1:]
    with open(os.environ["STUB_LOG"], "a") as f:
        f.write(json.dumps(argv) + "\\n")
    print("stub QEMU started", file=sys.stderr, flush=True)
    qmp = next(a for a in argv if a.startswith("socket,id=qmp0,"))
    path = qmp.split("path=", 1)[1].split(",", 1)[0]
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)
    def serve(conn):
        conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, '
                     b'"package": ""}, "capabilities": []}}\\r\\n')
        buf = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
            while b"\\n" in buf or buf.strip().endswith(b"}"):
                try:
                    msg, end = json.JSONDecoder().raw_decode(buf.decode().lstrip())
                except ValueError:
                    break
                buf = buf.decode().lstrip()[end:].encode()
                ret = {"status": "running", "running": True, "singlestep": False} \\
                    if msg.get("execute") == "query-status" else {}
                reply = {"return": ret}
                if "id" in msg:
                    reply["id"] = msg["id"]
                conn.sendall(json.dumps(reply).encode() + b"\\r\\n")
    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    if "-no-reboot" in argv:
        time.sleep(float(os.environ.get("STUB_REBOOT_AFTER", "1.5")))
        sys.exit(int(os.environ.get("STUB_EXIT", "0")))
    time.sleep(300)
    ''')


@pytest.fixture
def stub_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    stub = tmp_path / "qemu-stub"
    stub.write_text(f"#!{sys.executable}\n" + _STUB)
    stub.chmod(0o755)
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("STUB_LOG", str(log))
    monkeypatch.setattr("kolapy.machine.memory.admit",
                        lambda *a, **k: type("R", (), {"waited_s": 0, "reserve_mib": 0,
                                                       "set_pid": lambda s, p: None,
                                                       "release": lambda s: None})())
    profile = replace(load_platform("x86_64"), qemu_binary=str(stub))
    key = SSHKeyPair.generate(tmp_path / "ssh")
    m = QemuMachine(INSTALL, workdir=tmp_path / "vm", ssh_key=key, accel=Accel.TCG,
                    profile=profile, timeout_scale=1.0)
    m.workdir.mkdir(parents=True)
    pre = PreflightResult("raw", ResolvedFirmware(INSTALL.firmware))
    try:
        yield m, pre, log
    finally:
        m.stop(graceful=False)
        assert process.live_pids() == [], "a stub QEMU was left running"


def _launches(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_power_cycle_after_the_guests_reboot(stub_machine: Any) -> None:
    m, pre, log = stub_machine
    m._launch(pre)
    first_pid = m.pid
    m.paths.console_log.write_text("live system\nreboot: Restarting system\n")
    assert m.wait_for_exit(10) < 10
    assert not m.is_running()
    with pytest.raises(BootError, match=r"code 0 \(-no-reboot: the guest rebooted"):
        m.check_alive()  # what a phase waiting on the live system reports
    m.power_cycle(scenarios.installed_spec(m.spec))
    assert m.is_running() and m.pid != first_pid
    first, second = _launches(log)
    assert "-no-reboot" in first and "-no-reboot" not in second
    assert "live.iso" in " ".join(first) and "live.iso" not in " ".join(second)
    # The logs are kept and the installed boot is sliced after the live one.
    assert m.paths.console_log.read_text().startswith("live system")
    mark = len("live system\nreboot: Restarting system\n")
    assert m._boot_starts[-1].console_offset == mark
    assert m._watch.console_since == mark
    assert m.paths.qemu_stderr.read_text().count("stub QEMU started") == 2  # both kept
    m.stop(graceful=False)
    assert not m.is_running()


def test_qemu_crash_in_the_install_phase_is_an_error(stub_machine: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    m, pre, _ = stub_machine
    monkeypatch.setenv("STUB_EXIT", "3")
    m._launch(pre)
    with pytest.raises(BootError, match="QEMU exited with code 3"):
        m.wait_for_exit(10)


def test_no_reboot_within_the_timeout(stub_machine: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    m, pre, _ = stub_machine
    monkeypatch.setenv("STUB_REBOOT_AFTER", "300")
    m._launch(pre)
    with pytest.raises(TimeoutExpired, match="still running"):
        m.wait_for_exit(1)
    assert m.is_running()  # left to stop(), which the fixture checks ends it


def test_qemu_exit_before_the_live_system_signals_fails_the_live_phase(
        stub_machine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m, pre, _ = stub_machine
    monkeypatch.setenv("STUB_REBOOT_AFTER", "0.5")
    m._launch(pre)
    with pytest.raises(BootError, match=r"QEMU exited with code 0 \(-no-reboot: the guest "
                                        r"rebooted or powered off\)"):
        m.wait_for_port(scenarios.COMPLETION_PORT, scenarios.LIVE_OK, 10)
