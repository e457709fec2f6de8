"""A machine's private copy of a live ISO: its config embedded, console kargs appended.

What kola's ``--qemu-iso`` does: the config goes into the ISO's embed area (never
fw_cfg: the live system is platform ``metal``), ``console=`` through the
kernel-argument area; the user's ISO is only read.  ``iso-as-disk`` also writes
``NO`` over the El Torito boot record's ID, so the firmware boots the ISO's hybrid
MBR/GPT as it would a disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kolapy.errors import BadInputError
from kolapy.ignition.config import Ignition
from kolapy.ignition.iso import embed_in_iso, find_embed_area
from kolapy.iso.kargs import KargAreas, find_kargs_areas, modify, write_kargs

ELTORITO_BREAK_AT = 34823
"""Byte of the El Torito boot record volume descriptor's "EL TORITO" ID (kola: 'NO')."""

ISO9660_MAGIC_AT = 32769


def check_live_iso(path: Path) -> KargAreas:
    """Raise :class:`BadInputError` (one line) unless ``path`` is a live ISO with an
    Ignition embed area and kernel-argument areas; return the latter."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"ISO {path} does not exist")
    with path.open("rb") as f:
        f.seek(ISO9660_MAGIC_AT)
        if f.read(5) != b"CD001":
            raise BadInputError(f"{path}: not an ISO 9660 image")
    find_embed_area(path)
    return find_kargs_areas(path)


def prepare_live_iso(src: Path, dst: Path, config: Ignition | None, *,
                     append_kargs: tuple[str, ...] = (), as_disk: bool = False) -> Path:
    """Write ``dst``: a copy of ``src`` with ``config`` embedded (None: as it is) and
    ``append_kargs`` added to its kernel arguments (ones already there are skipped)."""
    src, dst = Path(src), Path(dst)
    areas = check_live_iso(src)
    if config is not None:
        embed_in_iso(src, dst, config)
    else:
        shutil.copyfile(src, dst)
    new = [k for k in append_kargs if k not in areas.current.split()]
    if new:
        write_kargs(dst, areas, modify(areas.current, append=new))
    if as_disk:
        with dst.open("r+b") as f:
            f.seek(ELTORITO_BREAK_AT)
            f.write(b"NO")
    return dst
