"""The QEMU command line, checked as data (no QEMU runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kolapy.enums import Accel, Arch, Firmware
from kolapy.machine.platform import ResolvedFirmware, load_platform
from kolapy.machine.qemu_command import MachinePaths, QemuCommand
from kolapy.machine.spec import DiskSpec, MachineSpec

WORK = Path("/tmp/kolapy-w/m1")


def _argv(spec: MachineSpec, accel: Accel = Accel.TCG, fw: ResolvedFirmware | None = None):
    profile = load_platform(spec.arch)
    fw = fw or ResolvedFirmware(spec.firmware)
    return QemuCommand(spec, profile, accel, MachinePaths.for_workdir(WORK), 2222, fw).argv()


def _values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_basics_x86_64_bios():
    spec = MachineSpec(image=Path("/img.qcow2"), memory_mib=3072, cpus=3, name="vm1")
    argv = _argv(spec)
    assert argv[0] == "qemu-system-x86_64"
    for flag in ("-nodefaults", "-no-user-config"):
        assert flag in argv
    assert _values(argv, "-display") == ["none"]
    assert _values(argv, "-accel") == ["tcg"]
    assert _values(argv, "-machine") == ["pc"]
    assert _values(argv, "-cpu") == ["qemu64"]
    assert _values(argv, "-smp") == ["3"]
    assert _values(argv, "-m") == ["3072"]
    assert "if=pflash" not in " ".join(argv)


def test_overlay_is_the_boot_disk_not_the_image():
    argv = _argv(MachineSpec(image=Path("/base/image.qcow2")))
    drives = _values(argv, "-drive")
    assert (f"if=none,id=disk0,file={WORK}/disk0.qcow2,format=qcow2,discard=unmap,cache=unsafe"
            in drives)
    assert "/base/image.qcow2" not in " ".join(argv)
    assert "virtio-blk-pci,drive=disk0,bootindex=1" in _values(argv, "-device")


def test_ignition_through_fw_cfg():
    argv = _argv(MachineSpec(image=Path("/i")))
    assert _values(argv, "-fw_cfg") == [f"name=opt/com.coreos/config,file={WORK}/config.ign"]


def test_ssh_forward_binds_loopback_only():
    argv = _argv(MachineSpec(image=Path("/i")))
    (nic,) = _values(argv, "-nic")
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in nic
    assert "restrict=on" in nic
    assert nic.count("hostfwd=") == 1


def test_console_log_and_socket():
    argv = _argv(MachineSpec(image=Path("/i")))
    chardevs = _values(argv, "-chardev")
    con = next(c for c in chardevs if c.startswith("socket,id=con0"))
    assert f"path={WORK}/console.sock" in con
    assert f"logfile={WORK}/console.txt" in con and "server=on" in con and "wait=off" in con
    assert _values(argv, "-serial") == ["chardev:con0"]


def test_journal_ports_per_distro():
    argv = _argv(MachineSpec(image=Path("/i")))
    devices = " ".join(_values(argv, "-device"))
    assert "name=com.nestos.ignition.journal" in devices
    assert "name=kolapy.journal" in devices
    chardevs = _values(argv, "-chardev")
    assert f"file,id=ignjournal,path={WORK}/ignition-journal.json,append=on" in chardevs
    assert f"file,id=journal,path={WORK}/journal.json,append=on" in chardevs
    fcos = " ".join(_values(_argv(MachineSpec(image=Path("/i"), distro="fcos")), "-device"))
    assert "name=com.coreos.ignition.journal" in fcos


def test_rng_and_qmp():
    argv = _argv(MachineSpec(image=Path("/i")))
    assert "virtio-rng-pci" in _values(argv, "-device")
    assert f"socket,id=qmp0,path={WORK}/qmp.sock,server=on,wait=off" in _values(argv, "-chardev")
    assert _values(argv, "-mon") == ["chardev=qmp0,mode=control"]


def test_uefi_uses_readonly_code_and_a_private_vars_copy():
    fw = ResolvedFirmware(Firmware.UEFI, Path("/fw/CODE.fd"), Path("/fw/VARS.fd"))
    argv = _argv(MachineSpec(image=Path("/i"), firmware=Firmware.UEFI), fw=fw)
    drives = _values(argv, "-drive")
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd" in drives
    assert f"if=pflash,format=raw,unit=1,file={WORK}/uefi-vars.fd" in drives
    assert "/fw/VARS.fd" not in " ".join(argv)  # the template is never written
    assert _values(argv, "-machine") == ["q35"]


def test_aarch64():
    fw = ResolvedFirmware(Firmware.UEFI, Path("/A/CODE.fd"), Path("/A/VARS.fd"))
    spec = MachineSpec(image=Path("/i"), arch=Arch.AARCH64, firmware=Firmware.UEFI)
    argv = _argv(spec, fw=fw)
    assert argv[0] == "qemu-system-aarch64"
    assert _values(argv, "-machine") == ["virt,gic-version=max"]
    assert _values(argv, "-cpu") == ["max,pauth=off"]
    assert _values(_argv(spec, Accel.KVM, fw), "-cpu") == ["host"]
    assert _values(argv, "-fw_cfg")


def test_additional_disks():
    spec = MachineSpec(
        image=Path("/i"),
        additional_disks=(DiskSpec(5, serial="data"), DiskSpec(1, channel="nvme")),
    )
    argv = _argv(spec)
    drives = _values(argv, "-drive")
    assert f"if=none,id=disk1,file={WORK}/disk1.qcow2,format=qcow2,cache=unsafe" in drives
    assert f"if=none,id=disk2,file={WORK}/disk2.qcow2,format=qcow2,cache=unsafe" in drives
    devices = _values(argv, "-device")
    assert "virtio-blk-pci,drive=disk1,serial=data" in devices
    assert "nvme,drive=disk2,serial=disk2" in devices
    with pytest.raises(ValueError, match="unsupported disk channel"):
        _argv(MachineSpec(image=Path("/i"), additional_disks=(DiskSpec(1, channel="ide"),)))


def test_auto_accel_must_be_resolved_first():
    with pytest.raises(ValueError, match="resolved"):
        _argv(MachineSpec(image=Path("/i")), Accel.AUTO)
