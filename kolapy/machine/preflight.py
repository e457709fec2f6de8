"""Checks that run before any VM starts: each failure is ONE line naming the input."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from kolapy.enums import Arch, Firmware
from kolapy.errors import BadInputError
from kolapy.machine.platform import PlatformProfile, ResolvedFirmware, find_firmware
from kolapy.machine.spec import MachineSpec

ACCEPTED_FORMATS = ("qcow2", "raw")

# GPT partition type GUIDs that pin an architecture (discoverable partitions spec,
# plus the BIOS boot partition that only x86 images carry).
_ARCH_PARTITION_TYPES: dict[str, Arch] = {
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": Arch.X86_64,  # root, x86-64
    "8484680c-9521-48c6-9c11-b0720656f69e": Arch.X86_64,  # /usr, x86-64
    "21686148-6449-6e6f-744e-656564454649": Arch.X86_64,  # BIOS boot
    "b921b045-1df0-41c3-af44-4c6f280d3fae": Arch.AARCH64,  # root, arm64
    "b0e01050-ee5f-4390-949a-9101b17104e9": Arch.AARCH64,  # /usr, arm64
}


@dataclass(frozen=True)
class PreflightResult:
    """What preflight learned and the launch needs."""

    image_format: str
    firmware: ResolvedFirmware


def preflight(
    spec: MachineSpec, profile: PlatformProfile, firmware: Firmware | None = None
) -> PreflightResult:
    """Check image, QEMU, qemu-img and firmware; raise :class:`BadInputError` on a problem."""
    firmware = firmware or spec.firmware
    qemu_img = require_qemu_img()
    if shutil.which(profile.qemu_binary) is None:
        raise BadInputError(
            f"QEMU for {profile.arch} not found: {profile.qemu_binary} is not on PATH "
            f"(install the apt package {profile.qemu_apt_package})"
        )
    resolved = resolve_firmware(profile, firmware)
    fmt = check_image(spec.image, qemu_img=qemu_img)
    detected = detect_image_arch(spec.image, fmt, qemu_img=qemu_img)
    if detected is not None and detected != spec.arch:
        raise BadInputError(
            f"image {spec.image} is a {detected} image, but the machine is {spec.arch}"
        )
    return PreflightResult(fmt, resolved)


def require_qemu_img() -> str:
    """Path of ``qemu-img`` or BadInputError."""
    path = shutil.which("qemu-img")
    if path is None:
        raise BadInputError("qemu-img not found on PATH (install the apt package qemu-utils)")
    return path


def resolve_firmware(profile: PlatformProfile, firmware: Firmware) -> ResolvedFirmware:
    """Find the firmware files or raise one line naming the paths searched and the package."""
    if not profile.supports(firmware):
        raise BadInputError(
            f"firmware {firmware} is not supported on {profile.arch} "
            f"(choose {', '.join(profile.machine_types)})"
        )
    resolved = find_firmware(profile, firmware)
    if resolved is None:
        files = profile.firmware[firmware]
        searched = ", ".join(str(p) for p in (*files.code, *files.vars))
        raise BadInputError(
            f"{firmware.upper()} firmware for {profile.arch} not found (searched {searched}; "
            f"install the apt package {files.apt_package})"
        )
    return resolved


def check_image(image: Path, *, qemu_img: str = "qemu-img") -> str:
    """Return the image format (qcow2 or raw) or raise BadInputError naming the image."""
    if not image.exists():
        raise BadInputError(f"image {image} does not exist")
    if not image.is_file():
        raise BadInputError(f"image {image} is not a regular file")
    proc = subprocess.run(
        [qemu_img, "info", "--output=json", str(image)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["qemu-img info failed"])[-1]
        raise BadInputError(f"image {image} is not a usable disk image: {reason}")
    info = json.loads(proc.stdout)
    fmt = str(info.get("format", ""))
    if fmt not in ACCEPTED_FORMATS:
        raise BadInputError(
            f"image {image} has format {fmt!r}; kolapy boots qcow2 or raw disk images"
        )
    # qemu-img calls any file "raw": a raw image counts only with a partition table.
    if fmt == "raw" and not has_partition_table(_read_head(image, 1024)):
        raise BadInputError(
            f"image {image} is not a disk image (no qcow2 header and no partition table)"
        )
    if fmt == "qcow2":
        check_qcow2(image, qemu_img=qemu_img)
    return fmt


def check_qcow2(image: Path, *, qemu_img: str = "qemu-img") -> None:
    """Reject a qcow2 whose metadata is corrupt (e.g. truncated); leaked clusters are fine.

    ``qemu-img check`` reads only the metadata (a few ms for a GiB image); its
    exit code is 2 for corruption and 1 when the check could not complete.
    """
    proc = subprocess.run(
        [qemu_img, "check", "-U", "--output=json", str(image)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    if proc.returncode in (0, 3):  # clean, or only leaked clusters
        return
    try:
        errors = int(json.loads(proc.stdout).get("corruptions", 0))
    except (ValueError, AttributeError):
        errors = 0
    first = (proc.stderr.strip().splitlines() or ["qemu-img check failed"])[0]
    found = f"{errors} corruption(s), first: " if errors else ""
    raise BadInputError(f"image {image} is corrupt: qemu-img check found {found}{first}")


def has_partition_table(head: bytes) -> bool:
    """True if the first sectors carry an MBR signature or a GPT header."""
    return (len(head) >= 512 and head[510:512] == b"\x55\xaa") or head[512:520] == b"EFI PART"


def detect_image_arch(image: Path, fmt: str, *, qemu_img: str = "qemu-img") -> Arch | None:
    """Guess the image's architecture from GPT partition types; None when unknown."""
    head = _guest_head(image, fmt, qemu_img, 34 * 512)
    if head is None or head[512:520] != b"EFI PART":
        return None
    entries_lba = int.from_bytes(head[512 + 72 : 512 + 80], "little")
    count = int.from_bytes(head[512 + 80 : 512 + 84], "little")
    size = int.from_bytes(head[512 + 84 : 512 + 88], "little")
    if entries_lba != 2 or size < 128:
        return None
    found: set[Arch] = set()
    for i in range(min(count, 128)):
        off = 1024 + i * size
        raw = head[off : off + 16]
        if len(raw) < 16:
            break
        type_guid = str(uuid.UUID(bytes_le=raw))
        if type_guid in _ARCH_PARTITION_TYPES:
            found.add(_ARCH_PARTITION_TYPES[type_guid])
    return found.pop() if len(found) == 1 else None


def _read_head(image: Path, size: int) -> bytes:
    with image.open("rb") as f:
        return f.read(size)


def _guest_head(image: Path, fmt: str, qemu_img: str, size: int) -> bytes | None:
    """The first ``size`` guest bytes of the image (qcow2 decoded via ``qemu-img dd``)."""
    if fmt == "raw":
        return _read_head(image, size)
    with tempfile.TemporaryDirectory(prefix="kolapy-head-") as tmp:
        out = Path(tmp) / "head"
        proc = subprocess.run(
            [qemu_img, "dd", "-f", fmt, "-O", "raw", "bs=512", f"count={size // 512}",
             f"if={image}", f"of={out}"],
            capture_output=True, check=False, timeout=60,
        )
        if proc.returncode != 0 or not out.exists():
            return None
        return out.read_bytes()[:size]
