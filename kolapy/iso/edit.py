"""``kolapy iso ignition embed|show|remove`` and ``kolapy iso kargs show|modify``:
the installers' ISO verbs, on any live ISO with an embed area / kargs.json.

Every change is a set of byte patches at fixed offsets (the ISO's layout never
changes).  Output: in place (no ``-o``), ``-o -`` (stdout; refused on a terminal)
or ``-o PATH`` (written to a temporary file, then renamed; an existing PATH is
refused).  Errors are :class:`BadInputError` (one line, exit 2).
"""

from __future__ import annotations

import lzma
import os
import shutil
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from kolapy.errors import BadInputError
from kolapy.ignition.config import Ignition
from kolapy.ignition.cpio import newc_archive, read_newc
from kolapy.ignition.iso import CONFIG_NAME, find_embed_area
from kolapy.iso import kargs as kargs_mod
from kolapy.iso.media import check_live_iso

Patch = tuple[int, bytes]


def _members(raw: bytes, where: str) -> dict[str, tuple[bytes, int]]:
    """Files of the concatenated (xz / gzip / plain) cpio archives in an embed area."""
    files: dict[str, tuple[bytes, int]] = {}
    rest = raw
    while rest.strip(b"\0"):
        rest = rest.lstrip(b"\0")
        try:
            if rest.startswith(b"\xfd7zXZ\0"):
                dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
                data, rest = dec.decompress(rest), dec.unused_data
            elif rest.startswith(b"\x1f\x8b"):
                gz = zlib.decompressobj(wbits=31)
                data, rest = gz.decompress(rest), gz.unused_data
            elif rest.startswith(b"070701"):
                data, rest = rest, b""
            else:
                raise BadInputError(f"{where}: unrecognised data in the embed area")
            files.update(read_newc(data))
        except (lzma.LZMAError, zlib.error, ValueError) as e:
            raise BadInputError(f"{where}: embed area holds no readable cpio: {e}") from None
    return files


def embedded_config(iso: Path) -> bytes | None:
    """The raw bytes of the embedded ``config.ign``, or None when there is none."""
    area = find_embed_area(iso)
    with open(iso, "rb") as f:
        f.seek(area.offset)
        raw = f.read(area.length)
    if not raw.strip(b"\0"):
        return None
    files = _members(raw, f"{iso}:{area.file}")
    return files[CONFIG_NAME][0] if CONFIG_NAME in files else None


def embed_patch(iso: Path, config: bytes, *, force: bool = False) -> Patch:
    """The patch embedding ``config`` (validated Ignition JSON, kept byte for byte)."""
    Ignition.from_json(config, source="the Ignition config")  # BadInputError if invalid
    area = find_embed_area(iso)
    if not force and embedded_config(iso) is not None:
        raise BadInputError(f"{iso} already has an embedded Ignition config; use --force")
    archive = newc_archive({CONFIG_NAME: (config, 0o600)})
    payload = lzma.compress(archive, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if len(payload) > area.length:
        raise BadInputError(
            f"Compressed initramfs is too large: {len(payload)} > {area.length}")
    return area.offset, payload + bytes(area.length - len(payload))


def remove_patch(iso: Path) -> Patch:
    area = find_embed_area(iso)
    return area.offset, bytes(area.length)


def kargs_patches(iso: Path, *, append: Sequence[str] = (), delete: Sequence[str] = (),
                  replace: Sequence[str] = (), default: bool = False) -> list[Patch]:
    """Patches setting the kargs (``default``: start from the ISO's default kargs)."""
    areas = check_live_iso(iso)
    base = areas.default if default else areas.current
    text = kargs_mod.modify(base, append=append, delete=delete, replace=replace)
    return [(a.offset, kargs_mod.area_bytes(text, areas, a)) for a in areas.areas]


def write_out(iso: Path, patches: Sequence[Patch], output: str | None,
              stdout: BinaryIO | None = None) -> Path | None:
    """Apply ``patches``: in place (``output`` None), to stdout (``-``), or to a new file."""
    if output is None:
        with open(iso, "r+b") as f:
            for offset, data in patches:
                f.seek(offset)
                f.write(data)
        return iso
    if output == "-":
        out = stdout or sys.stdout.buffer
        if hasattr(out, "isatty") and out.isatty():
            raise BadInputError("refusing to write an ISO image to a terminal (use -o FILE)")
        _stream(iso, sorted(patches), out)
        return None
    dst = Path(output)
    if dst.exists():
        raise BadInputError(f"{dst} already exists: refusing to overwrite it")
    tmp = dst.with_name(f".{dst.name}.kolapy-{os.getpid()}")
    try:
        shutil.copyfile(iso, tmp)
        write_out(tmp, patches, None)
        os.rename(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _stream(iso: Path, patches: Sequence[Patch], out: BinaryIO) -> None:
    pos = 0
    with open(iso, "rb") as f:
        for offset, data in patches:
            _copy(f, out, offset - pos)
            out.write(data)
            f.seek(len(data), os.SEEK_CUR)
            pos = offset + len(data)
        shutil.copyfileobj(f, out, 1 << 20)
    out.flush()


def _copy(src: BinaryIO, dst: BinaryIO, n: int) -> None:
    while n > 0:
        chunk = src.read(min(n, 1 << 20))
        if not chunk:
            raise BadInputError("ISO shorter than its embed areas")
        dst.write(chunk)
        n -= len(chunk)
