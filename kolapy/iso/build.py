"""Build the reference live ISO from the reference image's recipe.

The ISO is made with the reference image's own build steps (:mod:`kolapy.refimage`:
mmdebstrap + dracut, ostree commit and deployment, boot partition, disk), called, not
copied; then (NestOS's layout, ../docs/iso.md):

- ``images/pxeboot/vmlinuz``, ``initrd.img`` (the image's initramfs + a small
  overlay cpio: mount the live root, hand an embedded config to Ignition),
  ``rootfs.img`` (a cpio holding ``root.squashfs``: the deployment, made live);
- ``images/ignition.img``: 256 KiB of zeros, the embed area, loaded as an initrd;
- ``images/metal.map`` + ``images/metal.data.zst``: the disk image the installer
  writes (its data extents, and their bytes), and
  ``images/firstboot.img``, the initramfs overlay the installed system's first
  boot loads (it hands ``/boot/ignition/config.ign`` to Ignition);
- ``nestos/igninfo.json``, ``nestos/kargs.json``, ``nestos/features.json``;
- GRUB (``grub-mkrescue``: BIOS El Torito, UEFI, hybrid MBR/GPT for booting the
  ISO as a disk; on aarch64 UEFI only, with the image's own ``arm64-efi`` modules)
  with one ``boot/grub/grub.cfg`` holding the kernel-argument area.

Cached as ``<cache>/images/iso-<hash>/live-<arch>.iso`` where the hash covers the
reference recipe hash and this builder's sources and files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from kolapy import __version__ as _kolapy_version
from kolapy.enums import Arch
from kolapy.errors import BadInputError, InfraError
from kolapy.iso.newc import tree_archive, write_rootfs_img
from kolapy.refimage import cache, disk, foreign, rootfs, tree
from kolapy.refimage.recipe import Recipe, recipe_for, recipe_hash
from kolapy.refimage.tools import GRUB_LIB, require_host_tools, run

Progress = Callable[[str], None]

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
BUILD_SOURCES = ("build.py", "newc.py")
MANIFEST = "manifest.json"
STEPS = 6
MIB = 1024 * 1024
EMBED_AREA_SIZE = 256 * 1024
KARGS_AREA_SIZE = 1024
KARGS_MARK = "# NESTOS_KARG_EMBED_AREA"
ISO_TOOLS = {
    "mksquashfs": "squashfs-tools",
    "xorriso": "xorriso",
    "grub-mkrescue": "grub-common",
    "mformat": "mtools",
    "zstd": "zstd",
}


def iso_hash(arch: Arch) -> str:
    """The cache key: the reference recipe's hash plus this builder's sources and files."""
    h = hashlib.sha256(recipe_hash(recipe_for(arch)).encode())
    paths = [HERE / name for name in BUILD_SOURCES]
    paths += sorted(p for p in FILES.rglob("*") if p.is_file() or p.is_symlink())
    for path in paths:
        h.update(str(path.relative_to(HERE)).encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"x" if path.stat().st_mode & 0o111 else b"-")
    return h.hexdigest()[:16]


def iso_name(arch: Arch) -> str:
    return f"live-{Arch(arch).value}.iso"


def volume_id(arch: Arch) -> str:
    """The ISO's volume label (the live initramfs finds the ISO by it)."""
    return f"KOLAPY_LIVE_{iso_hash(arch).upper()}"


def entry_dir(arch: Arch) -> Path:
    return cache.images_dir() / f"iso-{iso_hash(arch)}"


def iso_path(arch: Arch = Arch.X86_64) -> Path | None:
    """The cached reference live ISO for ``arch``, or None if not built (never builds)."""
    entry = entry_dir(arch)
    iso = entry / iso_name(arch)
    if iso.is_file() and (entry / MANIFEST).is_file():
        return iso.resolve()
    return None


def read_manifest(arch: Arch = Arch.X86_64) -> dict[str, object] | None:
    path = iso_path(arch)
    if path is None:
        return None
    data: dict[str, object] = json.loads((path.parent / MANIFEST).read_text())
    return data


def _stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def require_iso_tools(arch: Arch) -> None:
    """Raise :class:`BadInputError` naming the first missing tool and its apt package."""
    for tool, package in ISO_TOOLS.items():
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise BadInputError(
                f"the ISO builder needs {tool!r}: install it with `apt-get install {package}`"
            )


def build_iso(arch: Arch = Arch.X86_64, *, force: bool = False,
              progress: Progress | None = None) -> Path:
    """Build the reference live ISO for ``arch`` (or return the cached one); return its path."""
    say = progress or _stderr_progress
    arch = Arch(arch)
    if not force and (cached := iso_path(arch)) is not None:
        return cached
    recipe = recipe_for(arch)
    require_iso_tools(arch)
    require_host_tools(() if recipe.grub_from_image else recipe.grub_platforms)
    if foreign.is_foreign(arch):
        foreign.require_foreign_tools(arch)
    key = iso_hash(arch)
    say(f"building the kolapy reference live ISO for {arch} (iso {key}, recipe "
        f"{recipe_hash(recipe)})")
    cache.images_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache.images_dir() / f"iso-{key}.lock"), timeout=3600):
        if not force and (cached := iso_path(arch)) is not None:
            say("another process built it meanwhile")
            return cached
        for stale in cache.images_dir().glob(f".build-iso-{key}-*"):
            pid = stale.name.rsplit("-", 2)[-2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                cache.remove_tree(stale)
        work = cache.images_dir() / f".build-iso-{key}-{os.getpid()}-{time.time_ns() % 10**6}"
        work.mkdir(parents=True)
        try:
            out = _build_in(recipe, key, work, say)
            # The key computed before the build (the recipe may change meanwhile).
            entry = cache.images_dir() / f"iso-{key}"
            if entry.exists():
                old = entry.with_name(f".build-iso-{key}-{os.getpid()}-old")
                os.rename(entry, old)
                cache.remove_tree(old)
            os.rename(out, entry)
        except BaseException:
            log = work / "build.log"
            if log.exists():
                kept = cache.images_dir() / "last-failed-iso-build.log"
                kept.write_bytes(log.read_bytes())
                say(f"ISO build failed; log kept at {kept}")
            raise
        finally:
            cache.remove_tree(work)
    return (entry / iso_name(arch)).resolve()


def ensure_iso(arch: Arch = Arch.X86_64, progress: Progress | None = None) -> Path:
    """The cached reference live ISO for ``arch``, building it first if needed."""
    return iso_path(arch) or build_iso(arch, progress=progress)


def _build_in(recipe: Recipe, key: str, work: Path, say: Progress) -> Path:
    start = time.monotonic()
    log = work / "build.log"

    def step(n: int, text: str) -> None:
        say(f"[{n}/{STEPS}] {text}  (t={time.monotonic() - start:.0f}s)")

    root = work / "rootfs"
    pkglist = work / "packages.tsv"
    step(1, "the reference image's root: mmdebstrap + dracut…")
    try:
        rootfs.build_rootfs(recipe, root, pkglist, log)
    except InfraError as exc:
        raise InfraError(f"{exc}\n(full log: {log})") from None
    kver = tree.kernel_version(root)

    step(2, "ostree commit and deployment…")
    var_src = work / "var"
    tree.ostree_layout(root, var_src)
    sysroot = work / "sysroot"
    checksum = tree.commit_and_deploy(recipe, root, sysroot, var_src, log)
    deployment = tree.deployment_dir(recipe, sysroot, checksum)
    grub_lib = GRUB_LIB
    if recipe.grub_from_image:
        grub_lib = deployment / "usr/lib/grub"

    step(3, "the installer's disk image (metal.map + metal.data.zst)…")
    disk.populate_boot(recipe, sysroot / "boot", work, log, sysroot, grub_lib)
    bootdir = work / "bootfs"
    os.rename(sysroot / "boot", bootdir)
    (sysroot / "boot").mkdir()
    raw = disk.assemble(recipe, sysroot, bootdir, work, log, grub_lib)
    isodir = work / "iso"
    images = isodir / "images"
    pxe = images / "pxeboot"
    pxe.mkdir(parents=True)
    data = work / "metal.data"
    extents = write_extents(raw, data)
    raw.unlink()
    (images / "metal.map").write_text(
        "# MiB offset and MiB count of each data extent of the disk image; their bytes,\n"
        "# in this order, are metal.data.zst.  The rest of the disk is zeros.\n"
        + "".join(f"{off} {count}\n" for off, count in extents))
    run(["zstd", "-q", "-T0", "-3", "--rm", data, "-o", images / "metal.data.zst"], log=log)

    step(4, "the live root: squashfs in rootfs.img…")
    moddir = deployment / "usr/lib/modules" / kver
    shutil.copyfile(moddir / "vmlinuz", pxe / "vmlinuz")
    base_initrd = (moddir / "initramfs.img").read_bytes()
    live = _make_live_root(recipe, sysroot, deployment, log)
    squashfs = work / "root.squashfs"
    run(["mksquashfs", live, squashfs, "-noappend", "-comp", "zstd", "-Xcompression-level", "6",
         "-no-progress", "-quiet"], log=log)
    write_rootfs_img(squashfs, pxe / "rootfs.img")
    squashfs.unlink()

    step(5, "initramfs overlays, embed and kargs areas, boot config…")
    pad = b"\0" * ((4 - len(base_initrd) % 4) % 4)
    overlay = work / "live-initrd"
    shutil.copytree(FILES / "live-initrd", overlay, symlinks=True)
    add_live_modules(moddir, overlay / "usr/lib/modules" / kver)
    (pxe / "initrd.img").write_bytes(base_initrd + pad + tree_archive(overlay))
    (images / "firstboot.img").write_bytes(tree_archive(FILES / "installed-initrd"))
    (images / "ignition.img").write_bytes(bytes(EMBED_AREA_SIZE))
    label = f"KOLAPY_LIVE_{key.upper()}"
    default_kargs = (f"nestos.liveiso={label} ignition.firstboot ignition.platform.id=metal "
                     "apparmor=0")
    grub_cfg, area_offset = grub_config(default_kargs)
    (isodir / "boot/grub").mkdir(parents=True)
    (isodir / "boot/grub/grub.cfg").write_text(grub_cfg)
    meta = isodir / "nestos"
    meta.mkdir()
    (meta / "igninfo.json").write_text(json.dumps({"file": "images/ignition.img"}) + "\n")
    (meta / "kargs.json").write_text(json.dumps({
        "default": default_kargs,
        "files": [{"path": "boot/grub/grub.cfg", "offset": area_offset}],
        "size": KARGS_AREA_SIZE,
    }, indent=2) + "\n")
    (meta / "features.json").write_text(json.dumps({
        "installer-config": True,
        "installer-config-directives": {
            "append-karg": True, "console": True, "dest-device": True,
            "ignition-file": True, "offline": True,
        },
        "live-initrd-network": False,
    }, indent=2) + "\n")

    step(6, "grub-mkrescue (BIOS + UEFI, hybrid)…")
    out = work / "out"
    out.mkdir()
    iso = out / iso_name(recipe.arch)
    mkrescue = ["grub-mkrescue", "-o", iso, "--compress=xz"]
    if recipe.grub_from_image:  # arm64: the image's own arm64-efi modules (none on the host)
        mkrescue += ["-d", grub_lib / recipe.grub_platforms[0]]
    run([*mkrescue, isodir, "--", "-volid", label], log=log)
    manifest = {
        "iso_hash": key,
        "recipe_hash": recipe_hash(recipe),
        "arch": recipe.arch.value,
        "volume_id": label,
        "default_kargs": default_kargs,
        "kernel_version": kver,
        "ostree_commit": checksum,
        "iso_size": iso.stat().st_size,
        "build_seconds": round(time.monotonic() - start, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kolapy_version": _kolapy_version,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "build.log").write_bytes(log.read_bytes())
    say(f"built {iso.name}: {manifest['iso_size'] / 2**20:.0f} MiB "
        f"in {manifest['build_seconds']:.0f} s")
    return out


LIVE_MODULES = ("isofs", "squashfs", "loop", "overlay", "sr_mod", "virtio_scsi")
"""Kernel modules the live root needs in the initramfs.  A foreign-arch reference image's
initramfs holds only the drivers of a QEMU guest's disk (dracut's exclusive
``--drivers`` under qemu-user), so the overlay brings these, with their dependencies."""

_MODULE_INDEX = ("modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin",
                 "modules.symbols", "modules.symbols.bin", "modules.builtin",
                 "modules.builtin.bin", "modules.builtin.alias.bin", "modules.builtin.modinfo",
                 "modules.order", "modules.softdep", "modules.devname")


def add_live_modules(moddir: Path, dest: Path, names: tuple[str, ...] = LIVE_MODULES) -> list[str]:
    """Copy ``names`` and their dependencies (from ``moddir/modules.dep``) and the module
    index under ``dest`` (``usr/lib/modules/<kver>`` of an initramfs overlay, which
    replaces the base initramfs's index: the same kernel's, listing every module).
    Modules built into the kernel are skipped.  Returns the copied module paths."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        base = Path(path).name.split(".ko")[0]
        by_name[base] = by_name[base.replace("-", "_")] = path
    wanted: list[str] = []
    todo = [by_name[n] for n in names if n in by_name]
    while todo:
        path = todo.pop()
        if path not in wanted:
            wanted.append(path)
            todo += deps.get(path, [])
    for rel in wanted:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(moddir / rel, dest / rel)
    for name in _MODULE_INDEX:
        if (moddir / name).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(moddir / name, dest / name)
    return sorted(wanted)


def data_extents(path: Path, unit: int = MIB) -> list[tuple[int, int]]:
    """The data (non-hole) regions of a sparse file as (offset, count) in ``unit``s,
    rounded out to whole units and merged."""
    merged: list[list[int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            first, last = start // unit, -(-end // unit)
            if merged and first <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
            pos = end
    finally:
        os.close(fd)
    return [(first, last - first) for first, last in merged]


def write_extents(raw: Path, out: Path) -> list[tuple[int, int]]:
    """Copy the data extents of ``raw`` (MiB units) into ``out``, back to back; return them.

    The installer writes only these (a 4 GiB image holds ~1 GiB of data: under TCG,
    streaming the zeros too took minutes)."""
    extents = data_extents(raw)
    with raw.open("rb") as src, out.open("wb") as dst:
        for off, count in extents:
            src.seek(off * MIB)
            remaining = count * MIB
            while remaining:
                chunk = src.read(min(remaining, 8 * MIB))
                if not chunk:  # the last extent ends with the file
                    break
                dst.write(chunk)
                remaining -= len(chunk)
            dst.write(bytes(remaining))
    return extents


def grub_config(default_kargs: str) -> tuple[str, int]:
    """The ISO's grub.cfg and the byte offset of its kernel-argument area in it.

    The area is the kargs, ``\\n``, then ``#`` to ``KARGS_AREA_SIZE`` bytes: GRUB reads
    the kargs as the end of the ``linux`` line and the rest as a comment line.
    """
    head = (
        "# kolapy reference live ISO (BIOS and UEFI)\n"
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial console\n"
        "terminal_output serial console\n"
        "set timeout=0\n"
        "menuentry 'kolapy live' {\n"
        "  linux /images/pxeboot/vmlinuz "
    )
    body = (default_kargs + "\n").encode()
    area = body + b"#" * (KARGS_AREA_SIZE - len(body))
    tail = (
        f" {KARGS_MARK}\n"
        "  initrd /images/pxeboot/initrd.img /images/ignition.img\n"
        "}\n"
    )
    return head + area.decode() + tail, len(head.encode())


def _make_live_root(recipe: Recipe, sysroot: Path, deployment: Path, log: Path) -> Path:
    """Turn the deployment into the live root in place (the work dir is thrown away)."""
    # ostree marks a deployment immutable.
    subprocess.run(["chattr", "-i", str(deployment)], capture_output=True, check=False)
    var = deployment / "var"
    stateroot_var = sysroot / "ostree/deploy" / recipe.osname / "var"
    run(["cp", "-a", f"{stateroot_var}/.", f"{var}/"], log=log)
    for d in ("home", "roothome", "srv", "opt", "mnt", "usrlocal"):
        (var / d).mkdir(exist_ok=True)
    run(["cp", "-a", f"{FILES / 'live'}/.", f"{deployment}/"], log=log)
    etc_units = deployment / "etc/systemd/system"
    wants = etc_units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "nestos-installer.service"
    link.unlink(missing_ok=True)
    os.symlink("/usr/lib/systemd/system/nestos-installer.service", link)
    # Nothing to grow: the root is a squashfs.
    for unit in (deployment / "usr/lib/systemd/system").glob("*growfs*.service"):
        mask = etc_units / unit.name
        mask.unlink(missing_ok=True)
        os.symlink("/dev/null", mask)
    return deployment
