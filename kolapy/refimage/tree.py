"""Steps 2-3: turn the Debian root into an ostree commit and deploy it into a sysroot.

The commit layout follows FACTS 8: kernel and initramfs in /usr/lib/modules/$KVER,
/etc as /usr/etc, state dirs as links into /var, empty /var (ostree 2022.7 does
not populate it, so the build copies the package-provided /var into the stateroot).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kolapy.refimage.recipe import Recipe
from kolapy.refimage.tools import output, run

# top-level dir -> where it points (relative link)
_LINKS = {
    "home": "var/home",
    "root": "var/roothome",
    "srv": "var/srv",
    "opt": "var/opt",
    "mnt": "var/mnt",
    "media": "run/media",
}
_EMPTY_DIRS = {"dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "tmp": 0o1777,
               "boot": 0o755, "sysroot": 0o755, "var": 0o755}


def kernel_version(rootfs: Path) -> str:
    """The single kernel version in ``rootfs``."""
    kvers = [p.name for p in (rootfs / "usr/lib/modules").iterdir()]
    if len(kvers) != 1:
        raise RuntimeError(f"expected one kernel in {rootfs}, found {kvers}")
    return kvers[0]


def _move_contents(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        os.rename(child, dst / child.name)


def ostree_layout(rootfs: Path, var_out: Path) -> None:
    """Rearrange ``rootfs`` in place into an ostree tree; its /var content goes to ``var_out``."""
    kver = kernel_version(rootfs)
    moddir = rootfs / "usr/lib/modules" / kver
    for name in ("vmlinuz", "initramfs.img"):
        if not (moddir / name).is_file():
            raise RuntimeError(f"{moddir / name} missing (customize.sh did not run?)")
    # /var is state: kept out of the commit, seeded into the stateroot after deploy.
    _move_contents(rootfs / "var", var_out)
    for name, target in _LINKS.items():
        path = rootfs / name
        if path.is_dir() and not path.is_symlink():
            if target.startswith("var/"):
                # e.g. /root/.bashrc -> var/roothome/.bashrc
                _move_contents(path, var_out / Path(target).relative_to("var"))
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.symlink(target, path)
    local = rootfs / "usr/local"
    if local.is_dir() and not local.is_symlink():
        _move_contents(local, var_out / "usrlocal")
        local.rmdir()
    os.symlink("../var/usrlocal", local)
    # mmdebstrap empties machine-id when it finishes; "uninitialized" makes the
    # first boot a systemd first boot, so presets (and Ignition's units) apply (FACTS 5).
    (rootfs / "etc/machine-id").write_text("uninitialized\n")
    os.rename(rootfs / "etc", rootfs / "usr/etc")
    for name, mode in _EMPTY_DIRS.items():
        path = rootfs / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        if path.is_dir():
            shutil.rmtree(path)
        path.mkdir()
        path.chmod(mode)
    (rootfs / "ostree").unlink(missing_ok=True)
    os.symlink("sysroot/ostree", rootfs / "ostree")


def commit_and_deploy(recipe: Recipe, rootfs: Path, sysroot: Path, var_src: Path,
                      log: Path) -> str:
    """Commit ``rootfs`` (consumed) into a new sysroot and deploy it; return the checksum."""
    repo = sysroot / "ostree/repo"
    sysroot.mkdir(parents=True)
    run(["ostree", "admin", "init-fs", "--modern", sysroot], log=log)
    run(["ostree", "admin", "os-init", f"--sysroot={sysroot}", recipe.osname], log=log)
    run(
        [
            "ostree", f"--repo={repo}", "commit", f"--branch={recipe.ostree_ref}",
            f"--tree=dir={rootfs}", "--consume",
            "--subject=kolapy reference image",
            f"--add-metadata-string=version={recipe.suite}-kolapy",
        ],
        log=log,
    )
    checksum = output(["ostree", f"--repo={repo}", "rev-parse", recipe.ostree_ref]).strip()
    kargs = [
        "root=LABEL=root", "rw", "console=tty0", f"console={recipe.console}",
        # NestOS confines with SELinux, not AppArmor; docker.io would need apparmor_parser.
        "apparmor=0",
        # Set by GRUB only while /boot/ignition.firstboot exists (FACTS 4).
        "$ignition_firstboot",
    ]
    run(
        ["ostree", "admin", "deploy", f"--sysroot={sysroot}", f"--os={recipe.osname}",
         "--karg-none", *(f"--karg-append={k}" for k in kargs), recipe.ostree_ref],
        log=log,
    )
    var = sysroot / "ostree/deploy" / recipe.osname / "var"
    run(["cp", "-a", f"{var_src}/.", f"{var}/"], log=log)
    # ldconfig and hwdb ran at build time: stamp /etc and /var newer than /usr so
    # ConditionNeedsUpdate does not redo them on first boot.
    deployment = deployment_dir(recipe, sysroot, checksum)
    for d in (deployment / "etc", var):
        (d / ".updated").touch()
    return checksum


def deployment_dir(recipe: Recipe, sysroot: Path, checksum: str) -> Path:
    """The checked-out deployment of ``checksum`` in ``sysroot``."""
    return sysroot / "ostree/deploy" / recipe.osname / "deploy" / f"{checksum}.0"
