"""Boots that need their own machine: UEFI, and the initramfs emergency fast-fail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kolapy.enums import Firmware
from kolapy.errors import EmergencyError
from kolapy.machine import process
from kolapy.machine.qemu import READY_TIMEOUT, QemuMachine
from kolapy.machine.spec import MachineSpec
from kolapy.transport.ssh import SSHKeyPair
from tests.vm.conftest import sha256

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> SSHKeyPair:
    return SSHKeyPair.generate(tmp_path_factory.mktemp("ssh"))


@pytest.fixture(scope="module")
def image_checksum(ref_image: Path):
    before = sha256(ref_image)
    yield before
    assert sha256(ref_image) == before, "the base image was written"


def test_uefi_boot(ref_image: Path, ssh_key: SSHKeyPair, image_checksum: str,
                   tmp_path: Path) -> None:
    spec = MachineSpec(image=ref_image, firmware=Firmware.UEFI, name="uefi")
    with QemuMachine(spec, workdir=tmp_path, ssh_key=ssh_key) as m:
        assert m.succeed("test -d /sys/firmware/efi && echo efi").strip() == "efi"


def test_initramfs_emergency_fails_fast(ref_image: Path, ssh_key: SSHKeyPair,
                                        image_checksum: str, tmp_path: Path) -> None:
    # Valid Ignition, but the config it merges is not JSON: Ignition fails in the initramfs.
    bad = {"ignition": {"version": "3.3.0",
                        "config": {"merge": [{"source": "data:,not%20json"}]}}}
    spec = MachineSpec(image=ref_image, ignition=bad, name="emergency")
    m = QemuMachine(spec, workdir=tmp_path, ssh_key=ssh_key)
    start = time.monotonic()
    with pytest.raises(EmergencyError) as exc:
        m.__enter__()
    elapsed = time.monotonic() - start
    # A timeout would be a BootError after READY_TIMEOUT; fast-fail stops at the initramfs.
    assert elapsed < m.scaled(READY_TIMEOUT) / 2, f"took {elapsed:.0f}s"
    assert "emergency" in str(exc.value).lower()
    assert exc.value.journal or "console shows" in str(exc.value)
    assert m.pid is not None and process.live_pids() == []
