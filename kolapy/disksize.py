"""Disk sizes as kola spells them (``--qemu-size 10G``, ``+5G``) and an image's own size."""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

from kolapy.errors import BadInputError

_SIZE = re.compile(r"(\+?)(\d+(?:\.\d+)?)([kKMGT]?)(?:i?B)?")
_UNIT = {"": 1, "k": 2**10, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_QCOW2_MAGIC = b"QFI\xfb"


def parse_size(text: str) -> tuple[bool, int]:
    """``"10G"`` -> (False, bytes); ``"+5G"`` -> (True, bytes to add).

    Units as qemu-img's: none (bytes), k/K, M, G, T (powers of 1024).
    Raises ``ValueError`` naming ``text``.
    """
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"disk size {text!r} is not a size (e.g. 10G, or +5G)")
    size = int(float(m.group(2)) * _UNIT[m.group(3)])
    if size <= 0:
        raise ValueError(f"disk size {text!r} must be more than 0")
    return bool(m.group(1)), size


@functools.lru_cache(maxsize=16)
def virtual_size(image: Path) -> int:
    """The guest-visible size of a qcow2 (its header) or raw image (the file), in bytes."""
    with open(image, "rb") as f:
        head = f.read(32)
    if head[:4] == _QCOW2_MAGIC and len(head) == 32:
        return int(struct.unpack(">Q", head[24:32])[0])
    return image.stat().st_size


def disk_gib(size: str | None, image: Path) -> float | None:
    """The disk size in GiB that ``size`` asks for with ``image`` (None when unset).

    Raises :class:`BadInputError` when an absolute size is smaller than the image.
    """
    if not size:
        return None
    relative, amount = parse_size(size)
    base = virtual_size(image)
    total = base + amount if relative else amount
    if total < base:
        raise BadInputError(
            f"disk size {size} is smaller than the image {image} ({base / 2**30:.1f} GiB)"
        )
    return total / 2**30
