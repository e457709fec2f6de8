"""Embed an Ignition config in a live ISO, the way coreos-/nestos-installer do.

The live ISO carries a zero-filled file (``images/ignition.img``) that the
bootloader loads as an extra initrd; ``coreos/igninfo.json`` (NestOS:
``NESTOS/IGNINFO.JSO``, an ISO9660 8.3 name) names it.  To embed a config,
overwrite that file's bytes in place with an xz-compressed (CRC32 check: the
kernel's decompressor has no CRC64) newc cpio holding ``config.ign``, padded
with zeros to the file's size.  The ISO's layout never changes.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from kolapy.errors import BadInputError
from kolapy.ignition.config import Ignition
from kolapy.ignition.cpio import newc_archive, read_newc

CONFIG_NAME = "config.ign"
# (Rock Ridge / Joliet path, ISO9660 path) of igninfo.json; FCOS, then NestOS.
IGNINFO_PATHS = (
    ("/coreos/igninfo.json", "/COREOS/IGNINFO.JSO;1"),
    ("/nestos/igninfo.json", "/NESTOS/IGNINFO.JSO;1"),
)


@dataclass(frozen=True)
class EmbedArea:
    """Where the config goes: a byte range of the ISO file."""

    file: str
    offset: int
    length: int


def iso9660_name(path: str) -> str:
    """``images/ignition.img`` -> ``/IMAGES/IGNITION.IMG;1`` (8.3, upper case)."""
    *dirs, last = path.strip("/").upper().split("/")
    stem, _, ext = last.partition(".")
    name = f"{stem[:8]}.{ext[:3]};1"
    return "/" + "/".join([*(d[:8] for d in dirs), name])


def _lookups(iso: pycdlib.PyCdlib, long_path: str, short_path: str) -> list[dict[str, str]]:
    """pycdlib keyword lookups of a file: Rock Ridge, Joliet, then ISO9660 name."""
    lookups = [{"iso_path": short_path}]
    if iso.has_rock_ridge():
        lookups.insert(0, {"rr_path": long_path})
    if iso.has_joliet():
        lookups.insert(1, {"joliet_path": long_path})
    return lookups


def find_record(iso: pycdlib.PyCdlib, long_path: str, short_path: str) -> object | None:
    """The directory record of a file: by Rock Ridge or Joliet name, else ISO9660 name."""
    for kw in _lookups(iso, long_path, short_path):
        try:
            return iso.get_record(**kw)
        except PyCdlibException:
            continue
    return None


def open_iso(iso_path: Path) -> pycdlib.PyCdlib:
    """``iso_path`` opened with pycdlib (close it when done), or :class:`BadInputError`."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(iso_path))
    except (OSError, PyCdlibException) as e:
        raise BadInputError(f"{iso_path}: not a readable ISO image: {e}") from None
    return iso


def read_first(iso: pycdlib.PyCdlib,
               paths: tuple[tuple[str, str], ...]) -> tuple[str, bytes] | None:
    """(long path, contents) of the first of ``paths`` (long, ISO9660) in ``iso``; else None."""
    for long_path, short_path in paths:
        # Read by the name that was found: the ISO9660 (8.3) names differ between ISO
        # writers (xorriso's own mangling is not mkisofs's), the Rock Ridge ones do not.
        for kw in _lookups(iso, long_path, short_path):
            buf = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(buf, **kw)
            except PyCdlibException:
                continue
            return long_path, buf.getvalue()
    return None


def find_embed_area(iso_path: Path) -> EmbedArea:
    """Locate the Ignition embed area of a live ISO, or raise :class:`BadInputError`."""
    iso = open_iso(iso_path)
    try:
        found = read_first(iso, IGNINFO_PATHS)
        if found is not None:
            long_path, data = found
            try:
                info = json.loads(data)
                name = info["file"]
            except (ValueError, KeyError, TypeError):
                raise BadInputError(
                    f"{iso_path}: {long_path} does not name the embed file"
                ) from None
            rec = find_record(iso, "/" + name.strip("/"), iso9660_name(name))
            if rec is None:
                raise BadInputError(f"{iso_path}: embed file {name!r} (from {long_path}) missing")
            start = rec.extent_location() * iso.logical_block_size  # type: ignore[attr-defined]
            size = rec.get_data_length()  # type: ignore[attr-defined]
            # igninfo.json may narrow the area to a slice of the file.
            offset, length = int(info.get("offset", 0)), info.get("length")
            length = size - offset if length is None else int(length)
            return EmbedArea(name, start + offset, length)
    finally:
        iso.close()
    raise BadInputError(
        f"{iso_path}: no Ignition embed area (neither coreos/igninfo.json "
        "nor NESTOS/IGNINFO.JSO is in the ISO)"
    )


def embed_payload(config: Ignition) -> bytes:
    """The bytes that go into the area: xz(CRC32) of a newc cpio with ``config.ign`` (0600)."""
    archive = newc_archive({CONFIG_NAME: (config.to_json().encode(), 0o600)})
    return lzma.compress(archive, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)


def embed_in_iso(iso_in: Path, iso_out: Path, config: Ignition) -> Path:
    """Write a copy of ``iso_in`` to ``iso_out`` with ``config`` embedded; return ``iso_out``.

    ``iso_in`` is never written.  Raises :class:`BadInputError` if the ISO has
    no embed area or the config does not fit.
    """
    iso_in, iso_out = Path(iso_in), Path(iso_out)
    if iso_out.exists() and iso_out.resolve() == iso_in.resolve():
        raise BadInputError(f"{iso_out}: refusing to embed into the input ISO itself")
    area = find_embed_area(iso_in)
    payload = embed_payload(config)
    if len(payload) > area.length:
        raise BadInputError(
            f"{iso_in}: Ignition config too big for the embed area "
            f"({len(payload)} bytes compressed > {area.length})"
        )
    partial = iso_out.with_name(iso_out.name + ".part")
    try:
        shutil.copyfile(iso_in, partial)
        with open(partial, "r+b") as f:
            f.seek(area.offset)
            f.write(payload + bytes(area.length - len(payload)))
        os.replace(partial, iso_out)
    finally:
        partial.unlink(missing_ok=True)
    return iso_out


def read_from_iso(iso: Path) -> Ignition | None:
    """The config embedded in ``iso``, or None if the area is empty (all zeros)."""
    iso = Path(iso)
    area = find_embed_area(iso)
    with open(iso, "rb") as f:
        f.seek(area.offset)
        raw = f.read(area.length)
    if not raw.strip(b"\0"):
        return None
    where = f"{iso}:{area.file}"
    try:
        archive = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(raw)
        files = read_newc(archive)
    except (lzma.LZMAError, ValueError) as e:
        raise BadInputError(f"{where}: embed area holds no xz cpio: {e}") from None
    if CONFIG_NAME not in files:
        raise BadInputError(f"{where}: embed area has no {CONFIG_NAME}")
    return Ignition.from_json(files[CONFIG_NAME][0], source=f"{where}/{CONFIG_NAME}")
