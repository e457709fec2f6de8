"""newc cpio archives of directory trees (directories, files, symlinks), for initramfs
overlays, and the single-member ``rootfs.img`` whose squashfs starts at byte 124.

:mod:`kolapy.ignition.cpio` writes flat archives of files; an initramfs overlay also
needs its directories (the kernel does not create parents) and links.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
HEADER_LEN = 110


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def header(ino: int, name: str, mode: int, size: int, nlink: int = 1) -> bytes:
    """One newc header plus the NUL-terminated name, padded to 4 bytes (root-owned, mtime 0)."""
    name_b = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name_b), 0)
    head = MAGIC + b"".join(b"%08X" % f for f in fields) + name_b
    return head + b"\0" * _pad4(len(head))


def tree_archive(root: Path) -> bytes:
    """A newc cpio of everything under ``root`` (names relative to it, parents first,
    sorted), keeping permission bits and symlink targets; owner root, mtime 0."""
    out = bytearray()
    paths = sorted(p for p in root.rglob("*"))
    for ino, path in enumerate(paths, start=1):
        name = str(path.relative_to(root))
        st = path.lstat()
        perm = stat.S_IMODE(st.st_mode)
        if path.is_symlink():
            target = os.readlink(path).encode()
            out += header(ino, name, stat.S_IFLNK | 0o777, len(target))
            out += target + b"\0" * _pad4(len(target))
        elif path.is_dir():
            out += header(ino, name, stat.S_IFDIR | perm, 0, nlink=2)
        elif path.is_file():
            data = path.read_bytes()
            out += header(ino, name, stat.S_IFREG | perm, len(data))
            out += data + b"\0" * _pad4(len(data))
        else:
            raise ValueError(f"{path}: only directories, files and symlinks go into the archive")
    out += header(0, TRAILER, 0, 0)
    return bytes(out)


SQUASHFS_MEMBER = "root.squashfs"
SQUASHFS_OFFSET = HEADER_LEN + len(SQUASHFS_MEMBER) + 1  # 124: already 4-aligned


def write_rootfs_img(squashfs: Path, out: Path) -> None:
    """``rootfs.img`` as NestOS ships it: a newc cpio whose only member is
    ``root.squashfs``, so the squashfs starts at byte 124 (the live initramfs mounts
    it from there with a loop offset)."""
    size = squashfs.stat().st_size
    head = header(1, SQUASHFS_MEMBER, stat.S_IFREG | 0o644, size)
    assert len(head) == SQUASHFS_OFFSET
    with out.open("wb") as f:
        f.write(head)
        with squashfs.open("rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)
        f.write(b"\0" * _pad4(size))
        f.write(header(0, TRAILER, 0, 0))
