"""`kolapy image list` and `kolapy image prune`: the reference image cache's entries.

Every change to the image recipe makes a new ``<cache>/images/<recipe-hash>/``
entry (and ``iso-<hash>/`` for the live ISO) and nothing removed the old ones.
:func:`prune` removes an entry unless it is the current recipe's (of any
architecture) or something uses it: a running process (QEMU keeps every disk of
a machine open, the backing image included) holds a file in it, or a builder
holds its lock.

This lives outside :mod:`kolapy.refimage` on purpose: the recipe hash covers
that package's top-level sources, so editing them would re-key every image.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from kolapy.enums import Arch
from kolapy.refimage.cache import MANIFEST, images_dir, remove_tree
from kolapy.refimage.recipe import VARIANTS, recipe_for, recipe_hash


@dataclass(frozen=True)
class CacheEntry:
    """One ``<cache>/images/<hash>/`` directory."""

    path: Path
    archs: tuple[str, ...]
    """Architectures of the images in it (from their manifests)."""
    size: int
    """Bytes on disk (all files, e.g. an upgrade repo too)."""
    built_at: str
    current: bool
    """The current recipe's entry for some architecture."""
    users: tuple[int, ...]
    """PIDs of processes holding a file in it (running machines)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kept(self) -> bool:
        return self.current or bool(self.users)

    def to_json(self) -> dict[str, object]:
        return {"hash": self.name, "path": str(self.path), "archs": list(self.archs),
                "size": self.size, "built_at": self.built_at, "current": self.current,
                "in_use_by": list(self.users)}


#: Entry names prune knows: a recipe hash, or a live ISO's (``iso-<hash>``, kolapy.iso).
_ENTRY_NAME = re.compile(r"(iso-)?[0-9a-f]{16}")


def current_hashes() -> set[str]:
    """The entry names of every architecture's current image (its variants', its live ISO's)."""
    names = {recipe_hash(recipe_for(arch, variant)) for arch in Arch for variant in ("", *VARIANTS)}
    try:
        from kolapy.iso.build import entry_dir as iso_entry_dir
    except ImportError:  # no live ISO builder in this kolapy
        return names
    return names | {iso_entry_dir(arch).name for arch in Arch}


def open_files_under(root: Path) -> dict[Path, set[int]]:
    """Files below ``root`` that processes have open: path -> PIDs (from ``/proc/*/fd``).

    Processes of other users are skipped (their fds are not readable): run prune
    as the user whose machines use the cache.
    """
    root = root.resolve()
    found: dict[Path, set[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = Path(os.readlink(fd))
            except OSError:
                continue
            if target.is_relative_to(root):
                found.setdefault(target, set()).add(int(proc.name))
    return found


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += (Path(dirpath) / f).lstat().st_blocks * 512
    return total


def _manifest(entry: Path) -> tuple[tuple[str, ...], str]:
    try:
        data = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return (), ""
    return (str(data.get("arch", "")),), str(data.get("built_at", ""))


def list_entries() -> list[CacheEntry]:
    """The cache's entries, oldest build first (work dirs of builds are not entries)."""
    base = images_dir()
    if not base.is_dir():
        return []
    current = current_hashes()
    users: dict[str, set[int]] = {}
    for path, pids in open_files_under(base).items():
        users.setdefault(path.relative_to(base.resolve()).parts[0], set()).update(pids)
    entries = []
    for entry in base.iterdir():
        # Work dirs of builds and names prune does not know are no entries.
        if not entry.is_dir() or not _ENTRY_NAME.fullmatch(entry.name):
            continue
        archs, built_at = _manifest(entry)
        entries.append(CacheEntry(entry, archs, _size(entry), built_at,
                                  entry.name in current, tuple(sorted(users.get(entry.name, ())))))
    return sorted(entries, key=lambda e: (e.built_at, e.name))


def prune(dry_run: bool = False) -> list[CacheEntry]:
    """Remove every entry that is neither current nor in use; return the removed ones.

    An entry whose build lock another process holds is left alone too.
    """
    removed = []
    for entry in list_entries():
        if entry.kept:
            continue
        lock_path = entry.path.with_name(f"{entry.name}.lock")
        try:
            with FileLock(str(lock_path), timeout=0):
                if not dry_run:
                    remove_tree(entry.path)
        except Timeout:
            continue
        if not dry_run:
            lock_path.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def format_entries(entries: list[CacheEntry]) -> str:
    """A table of ``entries`` for a terminal."""
    if not entries:
        return f"no reference images in {images_dir()}"
    lines = [f"{'HASH':<21} {'ARCH':<8} {'SIZE':>9}  {'BUILT':<20} STATUS"]
    for e in entries:
        status = "current" if e.current else "stale"
        if e.users:
            status += f", in use (pid {', '.join(map(str, e.users))})"
        lines.append(f"{e.name:<21} {','.join(e.archs) or '?':<8} "
                     f"{e.size / 2**20:>7.0f}Mi  {e.built_at[:19]:<20} {status}")
    return "\n".join(lines)
