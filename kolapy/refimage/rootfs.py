"""Step 1: a Debian root file system from packages (mmdebstrap), customised in a chroot."""

from __future__ import annotations

import shlex
from pathlib import Path

from kolapy.refimage import foreign
from kolapy.refimage.recipe import FILES_DIR, Recipe
from kolapy.refimage.tools import run

# Documentation and translations are dead weight in a test image.
_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/info/*",
)


def build_rootfs(recipe: Recipe, target: Path, pkglist: Path, log: Path) -> None:
    """Create ``target`` with mmdebstrap, run files/customize.sh in it, and write
    ``pkglist`` (``name<TAB>version`` lines from dpkg-query in the root)."""
    hook = " ".join(
        shlex.quote(str(a)) for a in ("sh", FILES_DIR / "customize.sh")
    ) + ' "$1" ' + " ".join(shlex.quote(str(a)) for a in (FILES_DIR, pkglist))
    argv: list[str] = [
        "mmdebstrap",
        "--variant=minbase",
        f"--architectures={recipe.arch.debian}",
        "--components=main",
        "--aptopt=Acquire::Languages \"none\"",
        f"--include={','.join(recipe.all_packages)}",
        *(f"--dpkgopt={opt}" for opt in _DPKG_EXCLUDES),
        f"--customize-hook={hook}",
        recipe.suite,
        str(target),
        *recipe.mirrors,
    ]
    # INITRD=No: skip the kernel postinst's initramfs; customize.sh builds the one we use.
    env = {"INITRD": "No"}
    if foreign.is_foreign(recipe.arch):
        # dracut under qemu-user: few drivers, no compression (done natively below).
        env["KOLAPY_DRACUT_DRIVERS"] = " ".join(foreign.FOREIGN_DRACUT_DRIVERS)
        env["KOLAPY_DRACUT_NO_COMPRESS"] = "1"
    with foreign.emulation(recipe.arch):
        run(argv, log=log, env=env)
    if foreign.is_foreign(recipe.arch):
        _compress_initramfs(target, log)


def _compress_initramfs(target: Path, log: Path) -> None:
    # The Debian cloud kernels decompress zstd initramfs images (CONFIG_RD_ZSTD).
    for img in (target / "usr/lib/modules").glob("*/initramfs.img"):
        packed = img.with_name("initramfs.img.zst")
        run(["zstd", "-q", "-T0", "-15", "-f", img, "-o", packed], log=log)
        packed.replace(img)
