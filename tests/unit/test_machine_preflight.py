"""Preflight: bad input is ONE line naming the input, raised before any VM starts."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from kolapy.enums import Arch, Firmware
from kolapy.errors import BadInputError
from kolapy.machine.platform import FirmwareFiles, load_platform
from kolapy.machine.preflight import (
    check_image,
    detect_image_arch,
    has_partition_table,
    preflight,
    require_qemu_img,
)
from kolapy.machine.spec import MachineSpec

needs_tools = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("sfdisk") is None,
    reason="qemu-img and sfdisk are needed to make test images",
)

ARM64_ROOT = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
X86_ROOT = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"


def _gpt_raw(path: Path, part_type: str = "L") -> Path:
    with path.open("wb") as f:
        f.truncate(8 * 1024 * 1024)
    subprocess.run(["sfdisk", "-q", str(path)], input=f"label: gpt\n,4M,{part_type}\n",
                   text=True, check=True)
    return path


def _one_line(exc: pytest.ExceptionInfo[BadInputError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_image(tmp_path):
    with pytest.raises(BadInputError) as exc:
        check_image(tmp_path / "nope.qcow2")
    assert str(tmp_path / "nope.qcow2") in _one_line(exc)


@needs_tools
def test_text_file_is_not_a_disk_image(tmp_path):
    img = tmp_path / "notes.qcow2"
    img.write_text("hello, I am not a disk\n" * 100)
    with pytest.raises(BadInputError) as exc:
        check_image(img)
    msg = _one_line(exc)
    assert str(img) in msg and "not a disk image" in msg


@needs_tools
def test_directory_is_rejected(tmp_path):
    with pytest.raises(BadInputError, match="not a regular file"):
        check_image(tmp_path)


@needs_tools
def test_qcow2_and_partitioned_raw_are_accepted(tmp_path):
    raw = _gpt_raw(tmp_path / "disk.raw")
    assert check_image(raw) == "raw"
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow)], check=True)
    assert check_image(qcow) == "qcow2"


@needs_tools
def test_other_formats_are_rejected(tmp_path):
    vdi = tmp_path / "disk.vdi"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vdi", str(vdi), "16M"], check=True)
    with pytest.raises(BadInputError) as exc:
        check_image(vdi)
    assert "'vdi'" in _one_line(exc)


def test_partition_table_detection():
    assert not has_partition_table(b"x" * 1024)
    mbr = bytearray(1024)
    mbr[510:512] = b"\x55\xaa"
    assert has_partition_table(bytes(mbr))
    gpt = bytearray(1024)
    gpt[512:520] = b"EFI PART"
    assert has_partition_table(bytes(gpt))


@needs_tools
def test_arch_detection_from_gpt_types(tmp_path):
    arm = _gpt_raw(tmp_path / "arm.raw", ARM64_ROOT)
    x86 = _gpt_raw(tmp_path / "x86.raw", X86_ROOT)
    plain = _gpt_raw(tmp_path / "plain.raw")
    assert detect_image_arch(arm, "raw") == Arch.AARCH64
    assert detect_image_arch(x86, "raw") == Arch.X86_64
    assert detect_image_arch(plain, "raw") is None
    qcow = tmp_path / "arm.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(arm), str(qcow)], check=True)
    assert detect_image_arch(qcow, "qcow2") == Arch.AARCH64


@needs_tools
def test_arch_mismatch_is_bad_input(tmp_path):
    arm = _gpt_raw(tmp_path / "arm.raw", ARM64_ROOT)
    with pytest.raises(BadInputError) as exc:
        preflight(MachineSpec(image=arm, arch=Arch.X86_64), load_platform(Arch.X86_64))
    msg = _one_line(exc)
    assert str(arm) in msg and "aarch64" in msg


def test_missing_qemu_names_the_package(tmp_path):
    profile = replace(load_platform(Arch.X86_64), qemu_binary="qemu-system-nonexistent")
    with pytest.raises(BadInputError) as exc:
        preflight(MachineSpec(image=tmp_path / "x"), profile)
    msg = _one_line(exc)
    assert "qemu-system-nonexistent" in msg and "qemu-system-x86" in msg


def test_missing_firmware_names_paths_and_package(tmp_path):
    base = load_platform(Arch.X86_64)
    fw = dict(base.firmware)
    fw[Firmware.UEFI] = FirmwareFiles("ovmf", (tmp_path / "CODE.fd",), (tmp_path / "VARS.fd",))
    profile = replace(base, firmware=fw)
    spec = MachineSpec(image=tmp_path / "x", firmware=Firmware.UEFI)
    if shutil.which(profile.qemu_binary) is None:
        pytest.skip(f"{profile.qemu_binary} is not installed")
    with pytest.raises(BadInputError) as exc:
        preflight(spec, profile)
    msg = _one_line(exc)
    assert str(tmp_path / "CODE.fd") in msg and "ovmf" in msg


def test_bios_on_aarch64_is_bad_input(tmp_path):
    profile = load_platform(Arch.AARCH64)
    if shutil.which(profile.qemu_binary) is None:
        pytest.skip(f"{profile.qemu_binary} is not installed")
    spec = MachineSpec(image=tmp_path / "x", arch=Arch.AARCH64, firmware=Firmware.BIOS)
    with pytest.raises(BadInputError, match="firmware bios is not supported on aarch64"):
        preflight(spec, profile)


def test_missing_qemu_img(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInputError, match=r"qemu-img not found.*qemu-utils"):
        require_qemu_img()
