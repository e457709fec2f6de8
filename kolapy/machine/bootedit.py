"""Append kernel arguments by editing a qcow2 overlay's boot partition before it boots.

GRUB loads the kernel from the disk, so QEMU's ``-append`` cannot reach it.
kola edits the boot partition (with guestfish) instead; kolapy does the same
with tools that need neither root nor kernel modules:

1. ``qemu-img dd`` copies the GPT and then the ext4 ``/boot`` partition (found by
   its file-system label ``boot``) out of the overlay into a scratch file;
2. ``debugfs -w`` edits files in that copy (no mount);
3. ``qemu-io`` writes back only the 64 KiB chunks that changed, into the
   overlay: the base image is never written, the overlay stays an overlay.

What is edited (``appendKernelArgs`` / ``appendFirstbootKernelArgs``):

* every BLS entry ``loader/entries/*.conf``: its ``options`` line (GRUB's
  ``blscfg``, FCOS and NestOS);
* a ``grub.cfg`` whose menu entries were generated from those entries (a
  ``linux`` line per entry, as the reference image's is): those lines too;
* first boot only: ``ignition.firstboot`` gets ``set
  ignition_network_kcmdline="..."``, which FCOS/NestOS GRUB sources while the
  stamp exists; a ``grub.cfg`` that sets the first-boot arguments literally
  (``set ignition_firstboot="ignition.firstboot ..."``, the reference image)
  gets them appended there, still inside its stamp check.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kolapy.errors import BadInputError, InfraError

log = logging.getLogger("kolapy.machine")

SECTOR = 512
CHUNK = 64 * 1024
BOOT_LABEL = "boot"
_GRUB_CFGS = ("/grub2/grub.cfg", "/grub/grub.cfg", "/loader/grub.cfg")
_LINUX_LINE = re.compile(r"^(\s*linux(?:16|efi)?\s+\S+)(.*)$")
_FIRSTBOOT_SET = re.compile(r'^(\s*set\s+ignition_firstboot="ignition\.firstboot)([^"]*)(".*)$')


@dataclass(frozen=True)
class Partition:
    """A GPT partition: byte offset and size within the disk."""

    number: int
    offset: int
    size: int
    name: str


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if Path(p).exists()), None
    )
    if path is None:
        raise BadInputError(f"appending kernel arguments needs {name} (apt install {package})")
    return path


def _run(argv: Sequence[str], what: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise InfraError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _read(overlay: Path, offset: int, length: int, out: Path) -> None:
    """Copy ``length`` bytes at ``offset`` of the disk into the raw file ``out``."""
    bs = SECTOR
    while bs < 4 << 20 and offset % (bs * 2) == 0 and length % (bs * 2) == 0:
        bs *= 2
    _run([_tool("qemu-img", "qemu-utils"), "dd", "-f", "qcow2", "-O", "raw", f"bs={bs}",
          # qemu-img dd counts "count" from the start of the input, skipped blocks included
          f"skip={offset // bs}", f"count={(offset + length) // bs}", f"if={overlay}", f"of={out}"],
         "qemu-img dd")


def partitions(overlay: Path, work: Path) -> list[Partition]:
    """The GPT partitions of the disk."""
    head = work / "gpt.raw"
    _read(overlay, 0, 34 * SECTOR, head)
    data = head.read_bytes()
    hdr = data[SECTOR:2 * SECTOR]
    if hdr[:8] != b"EFI PART":
        raise BadInputError(f"{overlay}: no GPT partition table: cannot append kernel arguments")
    entries_lba, count, size = struct.unpack_from("<QII", hdr, 72)
    table = work / "gpt-entries.raw"
    _read(overlay, entries_lba * SECTOR, -(-count * size // SECTOR) * SECTOR, table)
    raw = table.read_bytes()
    found = []
    for i in range(count):
        entry = raw[i * size:(i + 1) * size]
        if entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le", errors="replace").rstrip("\0")
        found.append(Partition(i + 1, first * SECTOR, (last - first + 1) * SECTOR, name))
    return found


def _ext_label(overlay: Path, part: Partition, work: Path) -> str | None:
    sb = work / f"sb{part.number}.raw"
    _read(overlay, part.offset + 1024, 1024, sb)
    data = sb.read_bytes()
    if struct.unpack_from("<H", data, 0x38)[0] != 0xEF53:
        return None
    return data[0x78:0x88].split(b"\0", 1)[0].decode(errors="replace")


def boot_partition(overlay: Path, work: Path) -> Partition:
    """The ext2/3/4 partition labelled ``boot``."""
    parts = partitions(overlay, work)
    for part in parts:
        if _ext_label(overlay, part, work) == BOOT_LABEL:
            return part
    raise BadInputError(f"{overlay}: no ext4 file system labelled {BOOT_LABEL!r} "
                        f"(partitions: {', '.join(p.name or str(p.number) for p in parts)}): "
                        "cannot append kernel arguments")


class BootFs:
    """Files of an ext4 image, read and written with ``debugfs`` (no mount)."""

    def __init__(self, image: Path) -> None:
        self.image = image
        self.debugfs = _tool("debugfs", "e2fsprogs")

    def _cmd(self, request: str, write: bool = False) -> str:
        argv = [self.debugfs, *(["-w"] if write else []), "-R", request, str(self.image)]
        return _run(argv, f"debugfs {request!r}")

    def kind(self, path: str) -> str | None:
        """``regular``, ``directory``, ``symlink``... or None when ``path`` is missing."""
        out = self._cmd(f"stat {path}")
        m = re.search(r"Type:\s+(\S+)", out)
        return m.group(1) if m else None

    def resolve(self, path: str) -> str:
        """``path`` with a symlinked first component resolved (``/loader`` -> ``/loader.1``)."""
        head, _, rest = path.lstrip("/").partition("/")
        if self.kind(f"/{head}") == "symlink":
            out = self._cmd(f"stat /{head}")
            m = re.search(r'Fast link dest:\s+"([^"]+)"', out)
            if m and "/" not in m.group(1).strip("/"):
                head = m.group(1).strip("/")
        return f"/{head}/{rest}" if rest else f"/{head}"

    def listdir(self, path: str) -> list[str]:
        out = self._cmd(f"ls -p {path}")
        names = []
        for line in out.splitlines():
            fields = line.strip("/").split("/")
            if len(fields) >= 5 and fields[4] not in (".", ".."):
                names.append(fields[4])
        return names

    def read(self, path: str) -> str:
        return self._cmd(f"cat {path}")

    def write(self, path: str, text: str, work: Path) -> None:
        local = work / "debugfs-upload"
        local.write_text(text)
        if self.kind(path) is not None:
            self._cmd(f"rm {path}", write=True)
        self._cmd(f"write {local} {path}", write=True)
        if self.read(path) != text:
            raise InfraError(f"debugfs: writing {path} in the boot partition did not stick")


def edit_bls(text: str, kargs: Sequence[str]) -> str:
    """A BLS entry with ``kargs`` appended to its ``options`` line."""
    out, done = [], False
    for line in text.splitlines():
        if line.startswith("options") and not done:
            line, done = f"{line.rstrip()} {' '.join(kargs)}", True
        out.append(line)
    if not done:
        out.append(f"options {' '.join(kargs)}")
    return "\n".join(out) + "\n"


def edit_grub_cfg(text: str, kargs: Sequence[str], firstboot: Sequence[str]) -> str:
    """``linux`` lines get ``kargs``; a literal first-boot ``set`` gets ``firstboot``."""
    out = []
    for line in text.splitlines():
        m = _LINUX_LINE.match(line)
        if m and kargs:
            line = f"{line.rstrip()} {' '.join(kargs)}"
        f = _FIRSTBOOT_SET.match(line)
        if f and firstboot and "ignition_network_kcmdline" not in text:
            line = f"{f.group(1)}{f.group(2)} {' '.join(firstboot)}{f.group(3)}"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def firstboot_stamp(firstboot: Sequence[str]) -> str:
    """``ignition.firstboot`` as kola writes it for first-boot kernel arguments."""
    return f'set ignition_network_kcmdline="{" ".join(firstboot)}"\n'


def edit_boot_fs(fs: BootFs, kargs: Sequence[str], firstboot: Sequence[str],
                 work: Path) -> list[str]:
    """Apply the kernel arguments to the boot file system; return the files changed."""
    changed = []
    if kargs:
        entries = fs.resolve("/loader/entries")
        confs = [n for n in fs.listdir(entries) if n.endswith(".conf")]
        if not confs:
            raise BadInputError("the image's boot partition has no BLS entries "
                                "(loader/entries/*.conf): cannot append kernel arguments")
        for name in confs:
            path = f"{entries}/{name}"
            fs.write(path, edit_bls(fs.read(path), kargs), work)
            changed.append(path)
    if firstboot:
        if fs.kind("/ignition.firstboot") is None:
            raise BadInputError("the image has no /boot/ignition.firstboot (not a first boot "
                                "image): cannot append first-boot kernel arguments")
        fs.write("/ignition.firstboot", firstboot_stamp(firstboot), work)
        changed.append("/ignition.firstboot")
    seen = set()
    for candidate in _GRUB_CFGS:
        path = fs.resolve(candidate)
        if path in seen or fs.kind(path) != "regular":
            continue
        seen.add(path)
        text = fs.read(path)
        new = edit_grub_cfg(text, kargs, firstboot)
        if new != text:
            fs.write(path, new, work)
            changed.append(path)
    return changed


def _write_back(overlay: Path, part: Partition, before: bytes, after: Path, work: Path) -> int:
    """Write the changed chunks of the partition copy into the overlay; return their count."""
    new = after.read_bytes()
    cmds, n = [], 0
    for off in range(0, len(new), CHUNK):
        chunk = new[off:off + CHUNK]
        if chunk == before[off:off + CHUNK]:
            continue
        src = work / f"chunk{n}.bin"
        src.write_bytes(chunk)
        cmds += ["-c", f"write -q -s {src} {part.offset + off} {len(chunk)}"]
        n += 1
    if cmds:
        _run([_tool("qemu-io", "qemu-utils"), "-f", "qcow2", *cmds, str(overlay)], "qemu-io")
    return n


def append_kernel_args(overlay: Path, kargs: Sequence[str] = (),
                       firstboot: Sequence[str] = ()) -> list[str]:
    """Make ``kargs`` (every boot) and ``firstboot`` (first boot) take effect on ``overlay``.

    ``overlay`` must be a qcow2 overlay that has not booted yet.  Returns the
    boot-partition files changed.  Raises :class:`BadInputError` when the image
    has no GPT, no ext4 ``boot`` file system or no BLS entries.
    """
    if not kargs and not firstboot:
        return []
    with tempfile.TemporaryDirectory(prefix="kolapy-bootedit-") as tmp:
        work = Path(tmp)
        part = boot_partition(overlay, work)
        image = work / "boot.raw"
        _read(overlay, part.offset, part.size, image)
        before = image.read_bytes()
        changed = edit_boot_fs(BootFs(image), kargs, firstboot, work)
        chunks = _write_back(overlay, part, before, image, work)
    log.info("%s: kernel arguments %s, first boot %s: %s (%d chunks written)", overlay.name,
             " ".join(kargs) or "-", " ".join(firstboot) or "-", ", ".join(changed), chunks)
    return changed
