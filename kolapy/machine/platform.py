"""Platform profiles: the per-architecture QEMU facts, loaded from YAML.

The data lives in the top-level ``platforms/<platform>-<arch>.yaml``
(``kolapy/platforms`` links there, so the wheel ships them as package data),
so that adding a distro's firmware path or a new architecture is a data change,
not a code change.  ``--platform-file FILE`` loads a user's profile of the same
schema (:func:`load_platform_file`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kolapy.enums import Accel, Arch, Firmware


class IgnitionInjection(StrEnum):
    """How the Ignition config reaches the guest."""

    FW_CFG = "fw_cfg"
    VIRTIO_BLK = "virtio-blk"
    """A disk with serial ``ignition`` (s390x/ppc64le); the seam is kept, not used yet."""


@dataclass(frozen=True)
class FirmwareFiles:
    """Where one firmware's files may live (first existing path wins) and its package."""

    apt_package: str
    code: tuple[Path, ...] = ()
    vars: tuple[Path, ...] = ()

    @property
    def needs_files(self) -> bool:
        """False for QEMU's built-in SeaBIOS."""
        return bool(self.code)


@dataclass(frozen=True)
class ResolvedFirmware:
    """Firmware files found on this host (both None for built-in SeaBIOS)."""

    firmware: Firmware
    code: Path | None = None
    vars_template: Path | None = None


@dataclass(frozen=True)
class PlatformProfile:
    """One QEMU platform (architecture) as data."""

    name: str
    arch: Arch
    qemu_binary: str
    qemu_apt_package: str
    machine_types: dict[Firmware, str]
    cpus: dict[Accel, str]
    console: str
    default_memory_mib: int
    ignition_injection: IgnitionInjection
    firmware: dict[Firmware, FirmwareFiles]

    def __hash__(self) -> int:  # dict fields: hash by identity of the name
        return hash(self.name)

    def machine_type(self, firmware: Firmware) -> str:
        """``-machine`` value for ``firmware``; raises ValueError if unsupported."""
        try:
            return self.machine_types[firmware]
        except KeyError:
            raise ValueError(
                f"{self.name} does not support firmware {firmware} "
                f"(choose {', '.join(self.machine_types)})"
            ) from None

    def cpu(self, accel: Accel) -> str:
        """``-cpu`` value for a resolved accelerator (kvm or tcg)."""
        return self.cpus[accel]

    def supports(self, firmware: Firmware) -> bool:
        return firmware in self.machine_types

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlatformProfile:
        """Build a profile from the parsed YAML mapping (raises ValueError on bad data)."""
        try:
            firmware = {
                Firmware(name): FirmwareFiles(
                    apt_package=str(entry.get("apt_package", "")),
                    code=tuple(Path(p) for p in entry.get("code") or ()),
                    vars=tuple(Path(p) for p in entry.get("vars") or ()),
                )
                for name, entry in data["firmware"].items()
            }
            return cls(
                name=str(data["name"]),
                arch=Arch.parse(str(data["arch"])),
                qemu_binary=str(data["qemu"]["binary"]),
                qemu_apt_package=str(data["qemu"]["apt_package"]),
                machine_types={Firmware(k): str(v) for k, v in data["machine"].items()},
                cpus={Accel(k): str(v) for k, v in data["cpu"].items()},
                console=str(data["console"]),
                default_memory_mib=int(data.get("default_memory_mib", 2048)),
                ignition_injection=IgnitionInjection(data.get("ignition_injection", "fw_cfg")),
                firmware=firmware,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"invalid platform profile: missing or bad key {exc}") from exc
        except ValueError as exc:  # an unknown arch, firmware, accelerator or injection
            raise ValueError(f"invalid platform profile: {exc}") from exc


@functools.cache
def load_platform(arch: Arch | str, platform: str = "qemu") -> PlatformProfile:
    """Load the shipped ``<platform>-<arch>.yaml`` profile (platform: qemu or libvirt)."""
    arch = Arch.parse(str(arch))
    ref = resources.files("kolapy") / "platforms" / f"{platform}-{arch}.yaml"
    return PlatformProfile.from_dict(yaml.safe_load(ref.read_text(encoding="utf-8")))


@functools.cache
def load_platform_file(path: Path, arch: Arch | str | None = None) -> PlatformProfile:
    """A user's profile (``--platform-file``), validated: :class:`ValueError` naming the
    file and what is wrong (unreadable, not YAML, a missing or bad key, another arch)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"platform file {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(f"platform file {path}: not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise ValueError(f"platform file {path}: expected a mapping of profile keys")
    try:
        profile = PlatformProfile.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"platform file {path}: {exc}") from None
    missing = [str(a) for a in (Accel.TCG, Accel.KVM) if a not in profile.cpus]
    if missing:
        raise ValueError(f"platform file {path}: cpu has no entry for {', '.join(missing)}")
    if arch is not None and profile.arch != Arch.parse(str(arch)):
        raise ValueError(f"platform file {path}: its arch is {profile.arch}, "
                         f"but the run is {Arch.parse(str(arch))}")
    return profile


def find_firmware(profile: PlatformProfile, firmware: Firmware) -> ResolvedFirmware | None:
    """Locate ``firmware``'s files on this host; None if they are missing."""
    files = profile.firmware.get(firmware)
    if files is None:
        return None
    if not files.needs_files:
        return ResolvedFirmware(firmware)
    code = next((p for p in files.code if p.is_file()), None)
    vars_ = next((p for p in files.vars if p.is_file()), None)
    if code is None or vars_ is None:
        return None
    # Prefer the vars file that matches the code file's directory/size family.
    for candidate in files.vars:
        if candidate.is_file() and candidate.parent == code.parent and (
            ("_4M" in code.name) == ("_4M" in candidate.name)
        ):
            vars_ = candidate
            break
    return ResolvedFirmware(firmware, code, vars_)
