"""Platform profiles load from package YAML and carry the facts QEMU needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kolapy.enums import Accel, Arch, Firmware
from kolapy.machine.platform import (
    FirmwareFiles,
    IgnitionInjection,
    PlatformProfile,
    find_firmware,
    load_platform,
)


def test_x86_64_profile():
    p = load_platform(Arch.X86_64)
    assert p.arch == Arch.X86_64
    assert p.qemu_binary == "qemu-system-x86_64"
    assert p.qemu_apt_package == "qemu-system-x86"
    assert p.machine_type(Firmware.UEFI) == "q35"
    assert p.supports(Firmware.BIOS)
    assert p.cpu(Accel.TCG) == "qemu64"
    assert p.console == "ttyS0"
    assert p.ignition_injection == IgnitionInjection.FW_CFG
    uefi = p.firmware[Firmware.UEFI]
    assert Path("/usr/share/OVMF/OVMF_CODE_4M.fd") in uefi.code
    assert Path("/usr/share/edk2/ovmf/OVMF_CODE.fd") in uefi.code


def test_aarch64_profile_is_uefi_only_with_fast_tcg_cpu():
    p = load_platform("arm64")
    assert p.arch == Arch.AARCH64
    assert p.machine_type(Firmware.UEFI) == "virt,gic-version=max"
    assert not p.supports(Firmware.BIOS)
    with pytest.raises(ValueError, match="does not support firmware bios"):
        p.machine_type(Firmware.BIOS)
    assert p.cpu(Accel.TCG) == "max,pauth=off"
    assert p.cpu(Accel.KVM) == "host"
    assert p.console == "ttyAMA0"
    code = p.firmware[Firmware.UEFI].code
    assert Path("/usr/share/AAVMF/AAVMF_CODE.fd") in code
    assert any(str(c).startswith("/usr/share/edk2/aarch64/") for c in code)


def test_bad_profile_data_is_a_value_error():
    with pytest.raises(ValueError, match="invalid platform profile"):
        PlatformProfile.from_dict({"name": "x", "arch": "x86_64"})


def _profile(tmp_path: Path, code: list[Path], vars_: list[Path]) -> PlatformProfile:
    base = load_platform(Arch.X86_64)
    fw = dict(base.firmware)
    fw[Firmware.UEFI] = FirmwareFiles("ovmf", tuple(code), tuple(vars_))
    return PlatformProfile(**{**base.__dict__, "firmware": fw})


def test_find_firmware_takes_first_existing_and_matching_vars(tmp_path):
    (tmp_path / "CODE.fd").write_bytes(b"c")
    (tmp_path / "CODE_4M.fd").write_bytes(b"c")
    (tmp_path / "VARS.fd").write_bytes(b"v")
    (tmp_path / "VARS_4M.fd").write_bytes(b"v")
    p = _profile(
        tmp_path,
        [tmp_path / "missing.fd", tmp_path / "CODE_4M.fd", tmp_path / "CODE.fd"],
        [tmp_path / "VARS.fd", tmp_path / "VARS_4M.fd"],
    )
    found = find_firmware(p, Firmware.UEFI)
    assert found is not None
    assert found.code == tmp_path / "CODE_4M.fd"
    assert found.vars_template == tmp_path / "VARS_4M.fd"


def test_find_firmware_missing_returns_none(tmp_path):
    p = _profile(tmp_path, [tmp_path / "nope.fd"], [tmp_path / "nope-vars.fd"])
    assert find_firmware(p, Firmware.UEFI) is None


def test_bios_needs_no_files():
    found = find_firmware(load_platform(Arch.X86_64), Firmware.BIOS)
    assert found is not None and found.code is None
