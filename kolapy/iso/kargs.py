"""The live ISO's kernel-argument areas, read and rewritten as nestos-/coreos-installer do.

``nestos/kargs.json`` (``coreos/kargs.json`` on FCOS) lists the areas:
``{"default": "...", "files": [{"path", "offset", "pad"?, "end"?}], "size": N}``.
Each area is ``size`` bytes inside a boot config at the file's byte position plus
``offset``: the kernel arguments, the end character (``\\n``), then the pad
character (``#``) to the end, so the rest is a comment to GRUB and isolinux.
Every area holds the same text.  ISOs without kargs.json may carry the legacy
``coreKarg`` header at byte 32672 of the system area.
"""

from __future__ import annotations

import json
import shlex
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kolapy.errors import BadInputError
from kolapy.ignition.iso import find_record, iso9660_name, open_iso, read_first

KARGS_INFO_PATHS = (
    ("/coreos/kargs.json", "/COREOS/KARGS.JSO;1"),
    ("/nestos/kargs.json", "/NESTOS/KARGS.JSO;1"),
)
MAX_SIZE = 2048
LEGACY_HEADER_AT = 32768 - 24 - 72
LEGACY_MAGIC = b"coreKarg"


@dataclass(frozen=True)
class KargArea:
    """One area: its byte position in the ISO, pad and end characters."""

    offset: int
    pad: str = "#"
    end: str = "\n"


@dataclass(frozen=True)
class KargAreas:
    """All kernel-argument areas of an ISO and what they hold."""

    size: int
    default: str
    areas: tuple[KargArea, ...]
    current: str


def _parse(raw: bytes, area: KargArea, where: str) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise BadInputError(f"{where}: kernel-argument area is not UTF-8") from None
    return text.rstrip(area.pad).rstrip(area.end).strip()


def _read_areas(iso_path: Path, size: int, default: str, areas: list[KargArea]) -> KargAreas:
    if not areas:
        raise BadInputError(f"{iso_path}: no kernel-argument areas listed")
    texts = []
    with open(iso_path, "rb") as f:
        for area in areas:
            f.seek(area.offset)
            raw = f.read(size)
            if len(raw) != size:
                raise BadInputError(f"{iso_path}: kernel-argument area at {area.offset} "
                                    "lies beyond the end of the file")
            texts.append(_parse(raw, area, f"{iso_path}@{area.offset}"))
    if any(t != texts[0] for t in texts):
        raise BadInputError(f"{iso_path}: kernel-argument areas differ: {texts!r}")
    return KargAreas(size, default, tuple(areas), texts[0])


def find_kargs_areas(iso_path: Path) -> KargAreas:
    """The kernel-argument areas of a live ISO, or :class:`BadInputError`."""
    iso_path = Path(iso_path)
    iso = open_iso(iso_path)
    areas: list[KargArea] = []
    try:
        found = read_first(iso, KARGS_INFO_PATHS)
        if found is not None:
            long_path, data = found
            try:
                info = json.loads(data)
                size, default, files = int(info["size"]), str(info["default"]), info["files"]
            except (ValueError, KeyError, TypeError):
                raise BadInputError(f"{iso_path}: {long_path} is not a kargs description") from None
            if size > MAX_SIZE or len(default) > size:
                raise BadInputError(f"{iso_path}: {long_path}: area size {size} is invalid")
            for entry in files:
                name = str(entry["path"])
                rec = find_record(iso, "/" + name.strip("/"), iso9660_name(name))
                if rec is None:
                    raise BadInputError(f"{iso_path}: {name} (from {long_path}) missing")
                start = rec.extent_location() * iso.logical_block_size  # type: ignore[attr-defined]
                areas.append(KargArea(start + int(entry["offset"]), str(entry.get("pad", "#")),
                                      str(entry.get("end", "\n"))))
    finally:
        iso.close()
    if areas:
        return _read_areas(iso_path, size, default, sorted(areas, key=lambda a: a.offset))
    return _legacy_areas(iso_path)


def _legacy_areas(iso_path: Path) -> KargAreas:
    with open(iso_path, "rb") as f:
        f.seek(LEGACY_HEADER_AT)
        head = f.read(72)
    if len(head) < 72 or head[:8] != LEGACY_MAGIC:
        raise BadInputError(f"{iso_path}: no kernel-argument areas (not a live ISO, or too old)")
    size, default_at, *offsets = struct.unpack("<8Q", head[8:])
    if size > MAX_SIZE:
        raise BadInputError(f"{iso_path}: legacy kargs area size {size} is invalid")
    with open(iso_path, "rb") as f:
        f.seek(default_at)
        default = _parse(f.read(size), KargArea(default_at), str(iso_path))
    areas = [KargArea(o) for o in offsets if o]
    return _read_areas(iso_path, size, default, areas)


def modify(kargs: str, *, append: Sequence[str] = (), delete: Sequence[str] = (),
           replace: Sequence[str] = ()) -> str:
    """Apply ``delete`` (``KEY`` or ``KEY=VALUE``), then ``append``, then ``replace``
    (``KEY=OLD=NEW``) to a kernel command line, as ``kargs modify`` does."""
    words = shlex.split(kargs) if kargs.strip() else []
    for d in delete:
        if d not in words:
            raise BadInputError(f"kernel argument {d!r} to delete is not present")
        words = [w for w in words if w != d]
    words += list(append)
    for r in replace:
        key, sep, rest = r.partition("=")
        old, sep2, new = rest.partition("=")
        if not sep or not sep2:
            raise BadInputError(f"--replace {r!r}: expected KEY=OLD=NEW")
        target = f"{key}={old}" if old else key
        if target not in words:
            raise BadInputError(f"kernel argument {target!r} to replace is not present")
        words = [f"{key}={new}" if w == target else w for w in words]
    return " ".join(words)


def area_bytes(text: str, areas: KargAreas, area: KargArea) -> bytes:
    """The bytes of one area holding ``text`` (raises if it does not fit)."""
    text = text.strip()
    body = (text + area.end).encode()
    if len(body) > areas.size:
        raise BadInputError(
            f"kernel arguments too large for the area: {len(body)} > {areas.size} bytes"
        )
    return body + area.pad.encode() * (areas.size - len(body))


def write_kargs(iso_path: Path, areas: KargAreas, text: str) -> None:
    """Write ``text`` into every area of ``iso_path`` in place (the caller's copy)."""
    with open(iso_path, "r+b") as f:
        for area in areas.areas:
            f.seek(area.offset)
            f.write(area_bytes(text, areas, area))
