"""Files of a Debian root file system, with their shared libraries, as image-layer entries.

:func:`closure` takes paths as a program inside the root sees them (e.g.
``/usr/sbin/iptables``), follows every symlink on the way *inside* the root
(``/usr/sbin/iptables`` -> ``/etc/alternatives/iptables`` -> ``xtables-nft-multi``;
``/lib64`` -> ``usr/lib64``), and adds each ELF file's program interpreter and
``DT_NEEDED`` libraries, found where the dynamic loader looks for them (the
multiarch directories, then ``/lib`` and ``/usr/lib``).  The result is a list
of :class:`~kolapy.containers.oci.Entry` reproducing those files and links, so a
container image can run Debian's binaries without a package manager.  ELF
headers are read in Python: nothing from the root runs on the host, so a root
of another architecture works the same.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from kolapy.containers.oci import Entry
from kolapy.enums import Arch

TRIPLET = {Arch.X86_64: "x86_64-linux-gnu", Arch.AARCH64: "aarch64-linux-gnu"}
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5
_MAX_LINKS = 40


class RootFileError(RuntimeError):
    """A path or library is missing from the root, or a symlink loops."""


def elf_dependencies(blob: bytes) -> tuple[str, list[str]]:
    """(program interpreter or ``""``, ``DT_NEEDED`` names) of a 64-bit little-endian ELF.

    Raises ValueError for anything else (callers treat such files as plain data).
    """
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    phoff = struct.unpack_from("<Q", blob, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", blob, 54)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    interp = ""
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", blob, phoff + i * phentsize
        )
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
        elif p_type == _PT_INTERP:
            interp = blob[p_offset:p_offset + p_filesz].split(b"\0", 1)[0].decode()
    if dynamic is None:
        return interp, []
    needed_offsets: list[int] = []
    strtab_vaddr = None
    offset, size = dynamic
    for pos in range(offset, offset + size, 16):
        tag, value = struct.unpack_from("<qQ", blob, pos)
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed_offsets.append(value)
        elif tag == _DT_STRTAB:
            strtab_vaddr = value
    if strtab_vaddr is None:
        return interp, []
    for vaddr, file_offset, filesz in loads:
        if vaddr <= strtab_vaddr < vaddr + filesz:
            strtab = strtab_vaddr - vaddr + file_offset
            break
    else:
        raise ValueError("DT_STRTAB outside every PT_LOAD segment")
    names = []
    for off in needed_offsets:
        start = strtab + off
        names.append(blob[start:blob.index(b"\0", start)].decode())
    return interp, names


def library_dirs(arch: Arch) -> tuple[str, ...]:
    """Where the dynamic loader looks by default (Debian's multiarch layout)."""
    triplet = TRIPLET[Arch(arch)]
    return (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib")


class _Collector:
    def __init__(self, root: Path, arch: Arch) -> None:
        self.root = root
        self.lib_dirs = library_dirs(arch)
        self.entries: dict[str, Entry] = {}
        self.seen_elves: set[str] = set()

    def resolve(self, path: str) -> str:
        """The final path of ``path`` inside the root; records every symlink crossed."""
        parts = list(PurePosixPath("/", path).parts[1:])
        current = PurePosixPath("/")
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                current = current.parent
                continue
            if part in (".", ""):
                continue
            candidate = current / part
            host = self.root / str(candidate).lstrip("/")
            if host.is_symlink():
                hops += 1
                if hops > _MAX_LINKS:
                    raise RootFileError(f"{path}: too many symlinks in the root")
                target = os.readlink(host)
                self.entries[str(candidate)] = Entry(str(candidate), kind="symlink",
                                                     target=target)
                base = PurePosixPath("/") if target.startswith("/") else current
                parts = list(PurePosixPath(target).parts) + parts
                if target.startswith("/"):
                    parts = parts[1:]
                current = base
                continue
            if not host.exists() and not host.is_symlink():
                raise RootFileError(f"{path}: {candidate} is not in the root {self.root}")
            current = candidate
        return str(current)

    def add(self, path: str) -> None:
        final = self.resolve(path)
        host = self.root / final.lstrip("/")
        if host.is_dir():
            raise RootFileError(f"{path}: is a directory (name its files)")
        mode = host.stat().st_mode & 0o7777
        self.entries[final] = Entry(final, source=host, mode=mode)
        if final in self.seen_elves:
            return
        self.seen_elves.add(final)
        with host.open("rb") as f:
            blob = f.read()
        try:
            interp, needed = elf_dependencies(blob)
        except ValueError:
            return
        if interp:
            self.add(interp)
        for lib in needed:
            self.add(self.find_library(lib, path))

    def find_library(self, name: str, wanted_by: str) -> str:
        for d in self.lib_dirs:
            candidate = f"{d}/{name}"
            if (self.root / candidate.lstrip("/")).exists():
                return candidate
        raise RootFileError(
            f"{wanted_by} needs {name}, found in none of {', '.join(self.lib_dirs)}"
        )


def closure(root: Path, paths: Iterable[str], arch: Arch) -> list[Entry]:
    """Entries for ``paths`` of ``root`` and everything they need (links, interpreter, libs)."""
    collector = _Collector(Path(root), arch)
    for path in paths:
        collector.add(path)
    return [collector.entries[k] for k in sorted(collector.entries)]
