"""Which tests share a machine."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from kolapy.config import RunConfig
from kolapy.enums import Arch, Firmware
from kolapy.machine.spec import MachineSpec
from kolapy.scheduling import share_key, spec_digest, spec_for

IMG = Path("/img.qcow2")


def test_equal_specs_share_when_not_exclusive() -> None:
    a = MachineSpec(image=IMG, name="a")
    b = MachineSpec(image=IMG, name="b")  # names do not count
    assert share_key("t1", a, exclusive=False, conflicts=False) == share_key(
        "t2", b, exclusive=False, conflicts=False
    )


def test_exclusive_tests_keep_their_own_machine() -> None:
    spec = MachineSpec(image=IMG)
    assert share_key("t1", spec, exclusive=True, conflicts=False) != share_key(
        "t2", spec, exclusive=True, conflicts=False
    )
    # ...but the subtests of one test share it
    assert share_key("t1", spec, exclusive=True, conflicts=False) == share_key(
        "t1", spec, exclusive=True, conflicts=False
    )


def test_conflicts_keep_apart() -> None:
    spec = MachineSpec(image=IMG)
    assert share_key("t1", spec, exclusive=False, conflicts=True) != share_key(
        "t2", spec, exclusive=False, conflicts=False
    )


def test_digest_sees_ignition_and_memory() -> None:
    base = MachineSpec(image=IMG)
    assert spec_digest(base) != spec_digest(MachineSpec(image=IMG, memory_mib=4096))
    with_cfg = MachineSpec(image=IMG, ignition={"ignition": {"version": "3.3.0"}})
    assert spec_digest(base) != spec_digest(with_cfg)
    assert spec_digest(with_cfg) == spec_digest(
        MachineSpec(image=IMG, ignition={"ignition": {"version": "3.3.0"}})
    )


def test_spec_for_raises_to_test_minimums() -> None:
    cfg = RunConfig(memory_mib=2048)
    meta = SimpleNamespace(min_memory=4096, min_disk=8, ignition=None, append_kargs=(),
                           additional_disks=(), additional_nics=0)
    spec = spec_for(meta, cfg, IMG)
    assert spec.memory_mib == 4096
    assert spec.disk_size_gib == 8
    small = SimpleNamespace(min_memory=512, min_disk=0, ignition=None, append_kargs=(),
                            additional_disks=(), additional_nics=0)
    assert spec_for(small, cfg, IMG).memory_mib == 2048


def test_aarch64_always_boots_uefi() -> None:
    cfg = RunConfig(arch=Arch.AARCH64, firmware=Firmware.BIOS)
    meta = SimpleNamespace(min_memory=0, min_disk=0, ignition=None, append_kargs=(),
                           additional_disks=(), additional_nics=0)
    assert spec_for(meta, cfg, IMG).firmware is Firmware.UEFI
