"""Step 1: a Debian root file system from packages (mmdebstrap), customised in a chroot."""

from __future__ import annotations

import shlex
from pathlib import Path

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
    run(argv, log=log, env={"INITRD": "No"})
