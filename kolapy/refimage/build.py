"""Build the reference image: the steps in order, progress, manifest, cache publish."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kolapy import __version__ as _kolapy_version
from kolapy.enums import Arch
from kolapy.errors import InfraError
from kolapy.refimage import cache, disk, foreign, rootfs, tree
from kolapy.refimage.recipe import Recipe, recipe_for, recipe_hash, variant_module
from kolapy.refimage.tools import GRUB_LIB, require_host_tools

Progress = Callable[[str], None]

STEPS = 6


def _stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_image(
    arch: Arch = Arch.X86_64,
    *,
    force: bool = False,
    progress: Progress | None = None,
    variant: str = "",
) -> Path:
    """Build the reference image for ``arch`` (or return the cached one); return its path.

    ``variant`` (e.g. ``"k8s"``) builds the reference image plus that variant's
    additions (:data:`kolapy.refimage.recipe.VARIANTS`), cached under its own hash.

    Safe to call from several processes at once: one builds, the others wait on
    the lock and then return the published image.  A failed build leaves
    nothing in the cache entry (its log is kept as ``images/last-failed-build.log``).
    """
    say = progress or _stderr_progress
    recipe = recipe_for(arch, variant)
    if not force and (cached := cache.image_path(arch, variant)) is not None:
        return cached
    require_host_tools(() if recipe.grub_from_image else recipe.grub_platforms)
    if foreign.is_foreign(arch):
        foreign.require_foreign_tools(arch)
    what = f"the {variant.upper()} variant of " if variant else ""
    say(f"building {what}the kolapy reference image for {arch} (recipe {recipe_hash(recipe)})")
    with cache.build_lock(recipe):
        if not force and (cached := cache.image_path(arch, variant)) is not None:
            say("another process built it meanwhile")
            return cached
        cache.remove_stale_work_dirs(recipe)
        work = cache.new_work_dir(recipe)
        try:
            out = _build_in(recipe, work, say)
            path = cache.publish(out, recipe)
        except BaseException:
            log = work / "build.log"
            if log.exists():
                kept = cache.images_dir() / "last-failed-build.log"
                kept.write_bytes(log.read_bytes())
                say(f"build failed; log kept at {kept}")
            raise
        finally:
            cache.remove_tree(work)
    return path


def ensure_image(
    arch: Arch = Arch.X86_64, progress: Progress | None = None, variant: str = ""
) -> Path:
    """The cached image for ``arch`` (and ``variant``), building it first if needed."""
    return cache.image_path(arch, variant) or build_image(
        arch, progress=progress, variant=variant
    )


def _build_in(recipe: Recipe, work: Path, say: Progress) -> Path:
    start = time.monotonic()
    log = work / "build.log"
    step_start = start

    def step(n: int, text: str) -> None:
        nonlocal step_start
        now = time.monotonic()
        say(f"[{n}/{STEPS}] {text}  (t={now - start:.0f}s)")
        step_start = now

    root = work / "rootfs"
    pkglist = work / "packages.tsv"
    extra = variant_module(recipe.variant) if recipe.variant else None
    prepared = None
    if extra is not None:
        say(f"[0/{STEPS}] {recipe.variant} variant: its parts (cached after their first build)…")
        prepared = extra.prepare(recipe.arch, say)
    step(1, "mmdebstrap rootfs + dracut initramfs (≈90 s)…")
    try:
        rootfs.build_rootfs(recipe, root, pkglist, log)
    except InfraError as exc:
        raise InfraError(f"{exc}\n(full log: {log})") from None
    variant_info = None
    if extra is not None:
        say(f"[1/{STEPS}] + the {recipe.variant} variant  (t={time.monotonic() - start:.0f}s)")
        variant_info = extra.install(root, prepared, recipe.arch, log, say)
    kver = tree.kernel_version(root)
    initramfs_size = (root / "usr/lib/modules" / kver / "initramfs.img").stat().st_size

    step(2, "ostree commit (≈30 s)…")
    var_src = work / "var"
    tree.ostree_layout(root, var_src)
    sysroot = work / "sysroot"
    checksum = tree.commit_and_deploy(recipe, root, sysroot, var_src, log)
    grub_lib = GRUB_LIB
    if recipe.grub_from_image:
        grub_lib = tree.deployment_dir(recipe, sysroot, checksum) / "usr/lib/grub"

    step(3, "boot partition: GRUB config from ostree's BLS entries…")
    disk.populate_boot(recipe, sysroot / "boot", work, log, sysroot, grub_lib)
    # The boot partition's content leaves the root; /boot stays as its mount point.
    bootdir = work / "bootfs"
    os.rename(sysroot / "boot", bootdir)
    (sysroot / "boot").mkdir()

    step(4, "partitions and file systems (no loop devices)…")
    raw = disk.assemble(recipe, sysroot, bootdir, work, log, grub_lib)

    step(5, "qcow2 (zstd-compressed)…")
    out = work / "out"
    out.mkdir()
    qcow2 = out / recipe.image_name
    disk.to_qcow2(raw, qcow2, log)
    raw.unlink()

    step(6, "manifest…")
    packages = [
        {"name": name, "version": version}
        for name, version in (
            line.split("\t", 1) for line in pkglist.read_text().splitlines() if line
        )
    ]
    manifest = {
        "recipe_hash": recipe_hash(recipe),
        "arch": recipe.arch.value,
        "suite": recipe.suite,
        "requested_packages": list(recipe.all_packages),
        "packages": packages,
        "kernel_version": kver,
        "initramfs_size": initramfs_size,
        "osname": recipe.osname,
        "ostree_ref": recipe.ostree_ref,
        "ostree_commit": checksum,
        "image": recipe.image_name,
        "qcow2_size": qcow2.stat().st_size,
        "virtual_size": recipe.disk_mib * disk.MIB,
        "build_seconds": round(time.monotonic() - start, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kolapy_version": _kolapy_version,
    }
    if variant_info is not None:
        manifest["variant"] = recipe.variant
        manifest[recipe.variant] = variant_info
    (out / cache.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "build.log").write_bytes(log.read_bytes())
    say(f"built {recipe.image_name}: {manifest['qcow2_size'] / 2**20:.0f} MiB "
        f"in {manifest['build_seconds']:.0f} s")
    return out

