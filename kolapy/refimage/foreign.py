"""Building an image for another architecture than the host's (arm64 on x86_64).

mmdebstrap and the chroot steps run the guest's binaries through qemu-user-static,
registered with binfmt_misc (FACTS "aarch64 on this x86_64 host").  What this
module sets up on the host it also takes down again, so a host that had no
binfmt_misc mount or no registration is left as it was found.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from kolapy.enums import Arch
from kolapy.errors import BadInputError, InfraError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# dracut's ``--drivers`` is an exclusive list: naming only what a QEMU guest needs
# avoids probing every module under emulation.
FOREIGN_DRACUT_DRIVERS = (
    "virtio_blk", "virtio_net", "virtio_pci", "virtio_mmio", "virtio_scsi",
    "virtio_rng", "virtio_console", "qemu_fw_cfg",
)


# The dynamic loader inside a root of each architecture (dracut's ldd stand-in).
RTLD = {
    Arch.X86_64: "/lib64/ld-linux-x86-64.so.2",
    Arch.AARCH64: "/lib/ld-linux-aarch64.so.1",
}


def is_foreign(arch: Arch) -> bool:
    """True when ``arch`` differs from the host's architecture."""
    return Arch.host() is not Arch(arch)


def _qemu_user_name(arch: Arch) -> str:
    return f"qemu-{Arch(arch).value}"


def require_foreign_tools(arch: Arch) -> None:
    """Raise :class:`BadInputError` naming the apt package for a missing emulation tool."""
    name = _qemu_user_name(arch)
    if shutil.which(f"{name}-static") is None:
        raise BadInputError(
            f"building the {arch} image on a {Arch.host()} host needs {name}-static: "
            "install it with `apt-get install qemu-user-static binfmt-support`"
        )
    if shutil.which("arch-test") is None:
        # mmdebstrap refuses foreign architectures without it.
        raise BadInputError(
            "building a foreign-architecture image needs arch-test: "
            "install it with `apt-get install arch-test`"
        )
    if shutil.which("update-binfmts") is None:
        raise BadInputError(
            "building a foreign-architecture image needs update-binfmts: "
            "install it with `apt-get install binfmt-support`"
        )


def _check(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InfraError(f"{' '.join(argv)} failed: {(proc.stderr or proc.stdout).strip()}")


def _registered(name: str) -> bool:
    entry = BINFMT_DIR / name
    return entry.is_file() and entry.read_text().startswith("enabled")


@contextlib.contextmanager
def emulation(arch: Arch) -> Iterator[None]:
    """Within the block, binaries of ``arch`` run on this host (no-op when native)."""
    if not is_foreign(arch):
        yield
        return
    name = _qemu_user_name(arch)
    mounted_here = False
    enabled_here = False
    try:
        if not (BINFMT_DIR / "register").exists():
            _check(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
            mounted_here = True
        if not _registered(name):
            # Debian's qemu-user-static entry has fix_binary (the F flag): the
            # interpreter is opened now, so the chroot needs no copy of it.
            _check(["update-binfmts", "--enable", name])
            enabled_here = True
        if not _registered(name):
            raise InfraError(f"binfmt_misc: {name} did not register")
        yield
    finally:
        if enabled_here:
            subprocess.run(["update-binfmts", "--disable", name], capture_output=True,
                           check=False)
        if mounted_here:
            subprocess.run(["umount", str(BINFMT_DIR)], capture_output=True, check=False)
