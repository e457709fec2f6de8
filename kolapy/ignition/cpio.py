"""The newc ("070701") cpio format: just enough to write and read an initramfs.

Each entry is a 110-byte ASCII header (magic + 13 eight-digit hex fields),
the NUL-terminated name padded to 4 bytes, then the data padded to 4 bytes;
the archive ends with an entry named ``TRAILER!!!``.
"""

from __future__ import annotations

import stat

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_HEADER_LEN = 110


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _entry(ino: int, name: str, data: bytes, mode: int, mtime: int) -> bytes:
    name_b = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(name_b), 0)
    header = MAGIC + b"".join(b"%08X" % f for f in fields)
    return (
        header + name_b + b"\0" * _pad4(_HEADER_LEN + len(name_b)) + data + b"\0" * _pad4(len(data))
    )


def newc_archive(files: dict[str, tuple[bytes, int]], *, mtime: int = 0) -> bytes:
    """A newc cpio of regular files: ``{name: (data, permission bits)}``.

    Owned by root; ``mtime`` 0 keeps the output reproducible.
    """
    out = bytearray()
    for ino, (name, (data, perm)) in enumerate(files.items(), start=1):
        out += _entry(ino, name, data, stat.S_IFREG | perm, mtime)
    out += _entry(0, TRAILER, b"", 0, 0)
    return bytes(out)


def read_newc(archive: bytes) -> dict[str, tuple[bytes, int]]:
    """Parse a newc cpio back to ``{name: (data, mode)}`` (mode with file type bits).

    Raises ``ValueError`` on a malformed archive.
    """
    files: dict[str, tuple[bytes, int]] = {}
    pos = 0
    while True:
        header = archive[pos : pos + _HEADER_LEN]
        if len(header) < _HEADER_LEN or not header.startswith(MAGIC):
            raise ValueError(f"no newc cpio header at offset {pos}")
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + _HEADER_LEN
        name = archive[name_start : name_start + namesize].rstrip(b"\0").decode()
        data_start = name_start + namesize + _pad4(_HEADER_LEN + namesize)
        if name == TRAILER:
            return files
        data = archive[data_start : data_start + size]
        if len(data) < size:
            raise ValueError(f"cpio entry {name!r} is truncated")
        files[name] = (data, mode)
        pos = data_start + size + _pad4(size)
