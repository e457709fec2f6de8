"""Host tools the image builder runs, and one way to run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kolapy.errors import BadInputError, InfraError

# tool -> Debian package that ships it (named in the error when it is missing)
HOST_TOOLS: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "qemu-img": "qemu-utils",
    "ostree": "ostree",
    "sfdisk": "fdisk",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.fat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "grub-mkimage": "grub-common",
    "chattr": "e2fsprogs",
}

# GRUB platform directory -> Debian package that ships its modules
GRUB_PLATFORM_PACKAGES: dict[str, str] = {
    "i386-pc": "grub-pc-bin",
    "x86_64-efi": "grub-efi-amd64-bin",
    "arm64-efi": "grub-efi-arm64-bin",
}

GRUB_LIB = Path("/usr/lib/grub")


def require_host_tools(grub_platforms: Sequence[str]) -> None:
    """Raise :class:`BadInputError` naming the first missing tool and its apt package."""
    for tool, package in HOST_TOOLS.items():
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise BadInputError(
                f"the image builder needs {tool!r}: install it with `apt-get install {package}`"
            )
    for platform in grub_platforms:
        if not (GRUB_LIB / platform / "kernel.img").exists():
            package = GRUB_PLATFORM_PACKAGES.get(platform, "grub")
            raise BadInputError(
                f"the image builder needs GRUB modules in {GRUB_LIB / platform}: "
                f"install them with `apt-get install {package}`"
            )
    if os.geteuid() != 0:
        raise BadInputError(
            "building the reference image needs root (mmdebstrap and chroot): "
            "run `sudo kolapy image build`"
        )


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timestamps: bool = False,
) -> None:
    """Run ``argv``, appending its output to ``log``; raise InfraError on failure.

    ``timestamps``: prefix each output line with the seconds since the start, as
    read from the pipe (a profile of long steps such as mmdebstrap).
    """
    args = [os.fspath(a) for a in argv]
    full_env = {**os.environ, **(env or {})}
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(args)}\n".encode())
        out.flush()
        if timestamps:
            start = time.monotonic()
            with subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, cwd=cwd
            ) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    out.write(b"%7.1f %s" % (time.monotonic() - start, line))
                    out.flush()
            returncode = proc.returncode
        else:
            returncode = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, check=False
            ).returncode
    if returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise InfraError(
            f"image build: {args[0]} failed with exit code {returncode}\n" + "\n".join(tail)
        )


def output(argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None) -> str:
    """Run ``argv`` and return its stdout; raise InfraError on failure."""
    args = [os.fspath(a) for a in argv]
    proc = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if proc.returncode != 0:
        raise InfraError(
            f"image build: {args[0]} failed with exit code {proc.returncode}: "
            f"{proc.stderr.strip()}"
        )
    return proc.stdout
