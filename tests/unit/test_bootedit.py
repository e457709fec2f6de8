"""Kernel arguments written into a qcow2 overlay's boot partition (no VM)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kolapy.machine import bootedit
from kolapy.machine.bootedit import (
    BootFs,
    append_kernel_args,
    edit_bls,
    edit_grub_cfg,
    firstboot_stamp,
)

BLS = """title Debian (ostree:0)
version 1
options root=LABEL=root rw $ignition_firstboot ostree=/ostree/boot.1/x/0
linux /ostree/x/vmlinuz
"""

GRUB_GENERATED = """set ignition_firstboot=""
if [ -f "/ignition.firstboot" ]; then
  set ignition_firstboot="ignition.firstboot ignition.platform.id=qemu"
fi
menuentry 'Debian (ostree:0)' {
linux /ostree/x/vmlinuz root=LABEL=root rw $ignition_firstboot ostree=/ostree/boot.1/x/0
initrd /ostree/x/initramfs.img
}
"""

GRUB_BLSCFG = """set ignition_firstboot=""
if [ -f "/ignition.firstboot" ]; then
    set ignition_network_kcmdline=''
    source "/ignition.firstboot"
    set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"
fi
blscfg
"""


def test_bls_options_line_gets_the_kargs() -> None:
    out = edit_bls(BLS, ["a=1", "quiet"])
    assert "options root=LABEL=root rw $ignition_firstboot ostree=/ostree/boot.1/x/0 a=1 quiet" \
        in out.splitlines()
    assert out.count("a=1") == 1


def test_generated_grub_cfg_gets_kargs_and_literal_firstboot() -> None:
    out = edit_grub_cfg(GRUB_GENERATED, ["a=1"], ["f=2"])
    lines = out.splitlines()
    assert lines[2] == '  set ignition_firstboot="ignition.firstboot ignition.platform.id=qemu f=2"'
    assert lines[5].endswith("ostree=/ostree/boot.1/x/0 a=1")
    assert "initrd /ostree/x/initramfs.img" in lines


def test_blscfg_grub_cfg_is_left_alone() -> None:
    # FCOS/NestOS: GRUB reads the BLS entries and sources ignition.firstboot itself
    assert edit_grub_cfg(GRUB_BLSCFG, ["a=1"], ["f=2"]) == GRUB_BLSCFG


def test_firstboot_stamp_is_what_kola_writes() -> None:
    assert firstboot_stamp(["ip=dhcp", "rd.neednet=1"]) == \
        'set ignition_network_kcmdline="ip=dhcp rd.neednet=1"\n'


def _ref_image() -> Path:
    from kolapy.enums import Arch
    from kolapy.refimage import image_path

    found = image_path(Arch.X86_64)
    if found is None:
        pytest.skip("needs the x86_64 reference image (kolapy image build)")
    return Path(found)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.skipif(not shutil.which("qemu-img") or not shutil.which("qemu-io"),
                    reason="needs qemu-img and qemu-io (qemu-utils)")
def test_overlay_of_the_reference_image(tmp_path: Path) -> None:
    image = _ref_image()
    before = _sha(image)
    overlay = tmp_path / "disk0.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "qcow2",
                    str(overlay)], check=True)
    changed = append_kernel_args(overlay, ["kolapy.every=1"], ["kolapy.first=1"])
    assert "/ignition.firstboot" in changed
    assert any(p.endswith(".conf") for p in changed) and any(p.endswith("grub.cfg")
                                                             for p in changed)
    # read back from the overlay: a fresh copy of the partition
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        part = bootedit.boot_partition(overlay, work)
        copy = work / "boot.raw"
        bootedit._read(overlay, part.offset, part.size, copy)
        fs = BootFs(copy)
        entries = fs.resolve("/loader/entries")
        (conf,) = [n for n in fs.listdir(entries) if n.endswith(".conf")]
        assert "kolapy.every=1" in fs.read(f"{entries}/{conf}")
        assert fs.read("/ignition.firstboot") == firstboot_stamp(["kolapy.first=1"])
        grub = fs.read(fs.resolve("/loader/grub.cfg"))
        assert "kolapy.first=1" in grub and "kolapy.every=1" in grub
        fsck = subprocess.run(["/sbin/e2fsck", "-fn", str(copy)], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert _sha(image) == before  # the base image is never written
