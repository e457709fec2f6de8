"""Steps 4-6: GRUB, the partitioned disk, and the qcow2 -- without loop devices.

Each file system is made from a directory into its own file (``mkfs.ext4 -d``,
``mkfs.fat`` + mtools) and copied into the raw disk at its partition offset; the
BIOS GRUB core goes into the BIOS boot partition with boot.img patched by hand
(what grub-install would do), so nothing is mounted or attached on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kolapy.refimage.recipe import FILES_DIR, Recipe
from kolapy.refimage.tools import GRUB_LIB, output, run

MIB = 1024 * 1024
SECTOR = 512

GPT_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
GPT_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

# Modules built into the GRUB images; the rest load from /boot/grub/<platform>/.
_GRUB_CORE_MODULES = (
    "part_gpt", "part_msdos", "ext2", "fat", "search", "search_label", "search_fs_uuid",
    "configfile", "normal", "echo", "test", "loadenv", "serial", "terminal", "linux",
    "gzio", "minicmd", "ls", "cat", "reboot", "halt",
)
_GRUB_EXTRA = {
    "i386-pc": ("biosdisk", "linux16"),
    "x86_64-efi": ("efi_gop", "all_video"),
    "arm64-efi": ("efi_gop",),
}

# Found by GRUB on every firmware: the boot partition by its label.
_EARLY_CFG = """search --no-floppy --label --set=root boot
set prefix=($root)/grub
configfile $prefix/grub.cfg
"""


@dataclass(frozen=True)
class Partition:
    name: str
    type_guid: str
    start_mib: int
    size_mib: int  # 0: to the end of the disk


def layout(recipe: Recipe) -> list[Partition]:
    """The GPT layout: BIOS boot (x86 only), ESP, boot, root (last, so it can grow)."""
    parts: list[Partition] = []
    start = 1
    if "i386-pc" in recipe.grub_platforms:
        parts.append(Partition("BIOS-BOOT", GPT_BIOS_BOOT, start, 1))
        start += 1
    parts.append(Partition("EFI-SYSTEM", GPT_ESP, start, recipe.esp_mib))
    start += recipe.esp_mib
    parts.append(Partition("boot", GPT_LINUX, start, recipe.boot_mib))
    start += recipe.boot_mib
    parts.append(Partition("root", GPT_LINUX, start, 0))
    return parts


def populate_boot(recipe: Recipe, bootdir: Path, work: Path, log: Path,
                  sysroot: Path, grub_lib: Path = GRUB_LIB) -> None:
    """Add GRUB's config, modules, env block and the first-boot stamp to ``bootdir``.

    ``grub_lib`` holds GRUB's per-platform module directories (the host's by default).
    """
    grub = bootdir / "grub"
    grub.mkdir(exist_ok=True)
    for platform in recipe.grub_platforms:
        dst = grub / platform
        dst.mkdir(exist_ok=True)
        for mod in (grub_lib / platform).iterdir():
            if mod.suffix in (".mod", ".lst"):
                shutil.copy2(mod, dst / mod.name)
    loader = os.readlink(bootdir / "loader")  # "loader.0" or "loader.1"
    bootversion = loader.rsplit(".", 1)[1]
    header = (FILES_DIR / "rootfs/usr/lib/kolapy/grub-header.cfg").read_text()
    entries = output(
        ["ostree", "admin", "instutil", "grub2-generate", f"--sysroot={sysroot}", bootversion],
        env={
            "GRUB2_BOOT_DEVICE_ID": "boot",
            "GRUB2_PREPARE_ROOT_CACHE": "search --no-floppy --label --set=root boot",
        },
    )
    if "menuentry" not in entries:
        raise RuntimeError(f"ostree generated no GRUB menu entry:\n{entries}")
    (bootdir / loader / "grub.cfg").write_text(header + entries)
    # ostree's grub2 backend keeps grub.cfg a link to the current loader dir.
    (grub / "grub.cfg").unlink(missing_ok=True)
    os.symlink("../loader/grub.cfg", grub / "grub.cfg")
    env = b"# GRUB Environment Block\n"
    (grub / "grubenv").write_bytes(env + b"#" * (1024 - len(env)))
    (bootdir / "ignition.firstboot").write_text("")


def _grub_image(recipe: Recipe, platform: str, out: Path, work: Path, log: Path,
                grub_lib: Path = GRUB_LIB) -> None:
    early = work / "grub-early.cfg"
    early.write_text(_EARLY_CFG)
    modules = [*_GRUB_CORE_MODULES, *_GRUB_EXTRA.get(platform, ())]
    run(
        ["grub-mkimage", "-O", platform, "-d", grub_lib / platform, "-p", "/grub",
         "-c", early, "-o", out, *modules],
        log=log,
    )


def _patch_bios_boot(disk: Path, core: Path, core_sector: int) -> None:
    """Install boot.img + core.img as grub-setup would for a BIOS boot partition."""
    boot = bytearray((GRUB_LIB / "i386-pc/boot.img").read_bytes())
    core_img = bytearray(core.read_bytes())
    if len(core_img) > MIB:
        raise RuntimeError(f"GRUB core.img is {len(core_img)} bytes: too big for BIOS boot")
    # boot.img: LBA of core.img's first sector (GRUB_BOOT_MACHINE_KERNEL_SECTOR).
    boot[0x5C:0x64] = core_sector.to_bytes(8, "little")
    # A hard disk: skip the floppy drive-number check (grub-setup does the same).
    boot[0x66:0x68] = b"\x90\x90"
    # diskboot.img (first sector of core.img): blocklist start of the rest of core.
    core_img[0x1F4:0x1FC] = (core_sector + 1).to_bytes(8, "little")
    with disk.open("r+b") as f:
        f.seek(0)
        f.write(boot[:440])  # keep the disk signature and the protective MBR
        f.seek(core_sector * SECTOR)
        f.write(core_img)


def _dir_size_mib(path: Path) -> int:
    # du counts hard links once: the ostree repo and deployment share inodes.
    kib = int(output(["du", "-sxk", path]).split()[0])
    return kib // 1024 + 1


def assemble(recipe: Recipe, sysroot: Path, bootdir: Path, work: Path, log: Path,
             grub_lib: Path = GRUB_LIB) -> Path:
    """Write the raw disk ``work/disk.raw`` from the sysroot and boot directories."""
    parts = layout(recipe)
    disk = work / "disk.raw"
    with disk.open("wb") as f:
        f.truncate(recipe.disk_mib * MIB)
    root_mib = recipe.disk_mib - parts[-1].start_mib - 1  # 1 MiB for the backup GPT
    need = _dir_size_mib(sysroot) * 13 // 10 + 256
    if need > root_mib:
        raise RuntimeError(f"root needs {need} MiB but the disk leaves {root_mib} MiB")
    script = ["label: gpt", "unit: sectors", ""]
    for p in parts:
        size = f", size={p.size_mib * MIB // SECTOR}" if p.size_mib else ""
        script.append(f"start={p.start_mib * MIB // SECTOR}{size}, type={p.type_guid}, "
                      f"name=\"{p.name}\"")
    sfdisk_in = work / "sfdisk.txt"
    sfdisk_in.write_text("\n".join(script) + "\n")
    with sfdisk_in.open() as stdin_file:
        proc = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", str(disk)],
                              stdin=stdin_file, capture_output=True, text=True, check=False)
    with log.open("a") as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"sfdisk failed: {proc.stderr}")

    images: dict[str, Path] = {}
    by_name = {p.name: p for p in parts}
    # ESP: GRUB as the removable-media loader, found without NVRAM entries.
    esp = work / "esp.img"
    run(["mkfs.fat", "-F", "32", "-n", "EFI-SYSTEM", "-C", esp, str(recipe.esp_mib * 1024)],
        log=log)
    efi_platform = next(p for p in recipe.grub_platforms if p.endswith("-efi"))
    efi_bin = work / recipe.efi_boot_file
    _grub_image(recipe, efi_platform, efi_bin, work, log, grub_lib)
    mtools_env = {"MTOOLS_SKIP_CHECK": "1"}
    run(["mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"], log=log, env=mtools_env)
    run(["mcopy", "-i", esp, efi_bin, f"::/EFI/BOOT/{recipe.efi_boot_file}"], log=log,
        env=mtools_env)
    images["EFI-SYSTEM"] = esp
    boot_img = work / "boot.img"
    run(["mkfs.ext4", "-q", "-L", "boot", "-d", bootdir, boot_img,
         f"{recipe.boot_mib}M"], log=log)
    images["boot"] = boot_img
    root_img = work / "root.img"
    run(["mkfs.ext4", "-q", "-L", "root", "-d", sysroot, root_img, f"{root_mib}M"], log=log)
    images["root"] = root_img
    for name, img in images.items():
        run(["dd", f"if={img}", f"of={disk}", "bs=1M", f"seek={by_name[name].start_mib}",
             "conv=notrunc,sparse", "status=none"], log=log)
        img.unlink()
    if "i386-pc" in recipe.grub_platforms:
        core = work / "core.img"
        _grub_image(recipe, "i386-pc", core, work, log)
        _patch_bios_boot(disk, core, by_name["BIOS-BOOT"].start_mib * MIB // SECTOR)
    return disk


def to_qcow2(raw: Path, out: Path, log: Path) -> None:
    """Convert to a compressed qcow2 (zstd: decompression is native and cheap under TCG)."""
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c",
         "-o", "compression_type=zstd", raw, out], log=log)
