"""No QEMU outlives its parent: SIGKILL, SIGTERM (with and without our handler), SIGINT.

A child Python starts a QemuMachine and blocks in ``wait_ready`` (as a real run
would during boot); we signal it and then look for a qemu-system process whose
command line holds that machine's unique work directory.  QEMU running is
enough here, so the disk is a blank partitioned image: no OS, no 30 s boot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kolapy.enums import Accel
    from kolapy.machine.qemu import QemuMachine, install_signal_handlers
    from kolapy.machine.spec import MachineSpec
    from kolapy.transport.ssh import SSHKeyPair

    image, workdir, handlers = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
    if handlers:
        install_signal_handlers()
    key = SSHKeyPair.generate(workdir / "ssh")
    m = QemuMachine(MachineSpec(image=image, name="leak"), workdir=workdir / "vm",
                    ssh_key=key, accel=Accel.TCG)
    with m:  # start + wait_ready: blocks, the disk has no OS
        pass
    """
)


@pytest.fixture(scope="module")
def blank_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("img")
    raw = d / "blank.raw"
    with raw.open("wb") as f:
        f.truncate(16 * 1024 * 1024)
    subprocess.run(["sfdisk", "-q", str(raw)], input="label: gpt\n,8M,L\n", text=True,
                   check=True)
    img = d / "blank.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(img)], check=True)
    return img


def _qemu_pids(workdir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"qemu-system.*{workdir}/"], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def _start_child(blank_image: Path, workdir: Path, handlers: bool) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(blank_image), str(workdir), "1" if handlers else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not _qemu_pids(workdir):
        if child.poll() is not None:
            pytest.fail(f"child exited early: {child.stdout.read().decode()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("QEMU never started")
        time.sleep(0.2)
    time.sleep(1.0)  # let it reach wait_ready
    return child


def _assert_no_qemu(workdir: Path, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while _qemu_pids(workdir):
        if time.monotonic() > deadline:
            pids = _qemu_pids(workdir)
            for pid in pids:  # do not leak from the test either
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"QEMU {pids} outlived its parent")
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("sig", "handlers"),
    [
        (signal.SIGKILL, False),  # parent-death signal
        (signal.SIGTERM, True),  # our handler: kill_all, then unwind
        (signal.SIGTERM, False),  # default action: parent-death signal again
        (signal.SIGINT, False),  # Ctrl-C: KeyboardInterrupt -> __enter__ cleanup
    ],
    ids=["sigkill", "sigterm-handler", "sigterm-default", "sigint"],
)
def test_no_qemu_survives(blank_image: Path, tmp_path: Path, sig: int, handlers: bool) -> None:
    child = _start_child(blank_image, tmp_path, handlers)
    try:
        assert _qemu_pids(tmp_path), "QEMU should be running before the signal"
        child.send_signal(sig)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    _assert_no_qemu(tmp_path)
    if sig == signal.SIGINT or handlers:
        # A clean unwind, not a death by signal: the machine was stopped by us.
        out = child.stdout.read().decode()  # type: ignore[union-attr]
        assert "KeyboardInterrupt" in out


def test_sigint_to_the_terminal_group_does_not_reach_qemu(blank_image: Path, tmp_path: Path):
    """QEMU runs in its own session, so a terminal Ctrl-C only reaches us."""
    child = _start_child(blank_image, tmp_path, False)
    try:
        (pid,) = _qemu_pids(tmp_path)
        assert os.getsid(pid) != os.getsid(child.pid)
        assert os.getsid(pid) == pid
    finally:
        child.kill()
        child.wait()
    _assert_no_qemu(tmp_path)
