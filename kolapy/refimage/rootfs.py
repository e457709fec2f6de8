"""Step 1: a Debian root file system from packages (mmdebstrap), customised in a chroot."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import kolapy
from kolapy.errors import BadInputError
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


# mmdebstrap's hook making /bin, /sbin, /lib links into /usr itself: without it apt
# installs the usrmerge package, which pulls in perl and converts the tree in a script.
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")


def _hook(script: str, *args: str | Path) -> str:
    """A hook command line: ``sh files/<script> "$1" args...`` (``$1`` is the root)."""
    quoted = " ".join(shlex.quote(str(a)) for a in args)
    return f'sh {shlex.quote(str(FILES_DIR / script))} "$1" {quoted}'.rstrip()


def mmdebstrap_command(
    recipe: Recipe, target: Path, pkglist: Path
) -> tuple[list[str], dict[str, str]]:
    """The mmdebstrap argv and extra environment that build the root for ``recipe``.

    Native: mmdebstrap installs the packages (``--include``).  Foreign: the essential
    hook (files/essential.sh) installs them from .debs decompressed on the host
    (:mod:`kolapy.refimage.debrepack`), as the extract hook does for the essential
    packages, so emulated dpkg only copies plain tar archives.
    """
    foreign_build = foreign.is_foreign(recipe.arch)
    python = sys.executable if foreign_build else ""
    argv: list[str] = [
        "mmdebstrap",
        "--verbose",
        "--variant=minbase",
        f"--architectures={recipe.arch.debian}",
        "--components=main",
        "--aptopt=Acquire::Languages \"none\"",
        # The root is thrown away on failure: no fsync per unpacked file.
        "--dpkgopt=force-unsafe-io",
        *(f"--dpkgopt={opt}" for opt in _DPKG_EXCLUDES),
        f"--hook-dir={MERGED_USR_HOOKS}",
    ]
    if foreign_build:
        argv += [
            f"--extract-hook={shlex.quote(python)} -m kolapy.refimage.debrepack "
            '"$1/var/cache/apt/archives"',
            f"--essential-hook={_hook('essential.sh', python, *recipe.all_packages)}",
        ]
    else:
        argv += [
            f"--include={','.join(recipe.all_packages)}",
            f"--essential-hook={_hook('essential.sh', '')}",
        ]
    argv += [
        f"--customize-hook={_hook('customize.sh', FILES_DIR, pkglist)}",
        recipe.suite,
        str(target),
        *recipe.mirrors,
    ]
    # INITRD=No: skip the kernel postinst's initramfs; customize.sh builds the one we use.
    env = {"INITRD": "No"}
    if foreign_build:
        # dracut under qemu-user: few drivers, no compression (done natively below).
        env["KOLAPY_DRACUT_DRIVERS"] = " ".join(foreign.FOREIGN_DRACUT_DRIVERS)
        env["KOLAPY_DRACUT_NO_COMPRESS"] = "1"
        env["KOLAPY_RTLD"] = foreign.RTLD[recipe.arch]
        # The hooks run ``python -m kolapy.refimage.debrepack``: find this kolapy.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(kolapy.__file__).parent.parent), os.environ.get("PYTHONPATH"))
            if p
        )
    return argv, env


def build_rootfs(recipe: Recipe, target: Path, pkglist: Path, log: Path) -> None:
    """Create ``target`` with mmdebstrap, run files/customize.sh in it, and write
    ``pkglist`` (``name<TAB>version`` lines from dpkg-query in the root)."""
    if not (MERGED_USR_HOOKS / "setup00.sh").is_file():
        raise BadInputError(
            f"the image builder needs mmdebstrap's hooks in {MERGED_USR_HOOKS}: "
            "install mmdebstrap >= 1.0 (`apt-get install mmdebstrap`)"
        )
    argv, env = mmdebstrap_command(recipe, target, pkglist)
    with foreign.emulation(recipe.arch):
        run(argv, log=log, env=env, timestamps=True)
    if foreign.is_foreign(recipe.arch):
        _compress_initramfs(target, log)


def _compress_initramfs(target: Path, log: Path) -> None:
    # The Debian cloud kernels decompress zstd initramfs images (CONFIG_RD_ZSTD).
    for img in (target / "usr/lib/modules").glob("*/initramfs.img"):
        packed = img.with_name("initramfs.img.zst")
        run(["zstd", "-q", "-T0", "-15", "-f", img, "-o", packed], log=log)
        packed.replace(img)
