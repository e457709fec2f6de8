"""Small closed vocabularies used across kolapy."""

from __future__ import annotations

import platform
from enum import StrEnum


class Arch(StrEnum):
    """Guest CPU architecture (kola/Go-style names are accepted by :meth:`parse`)."""

    X86_64 = "x86_64"
    AARCH64 = "aarch64"

    @classmethod
    def parse(cls, value: str) -> Arch:
        aliases = {"amd64": "x86_64", "arm64": "aarch64"}
        try:
            return cls(aliases.get(value, value))
        except ValueError:
            raise ValueError(f"unknown architecture {value!r} (choose x86_64 or aarch64)") from None

    @classmethod
    def host(cls) -> Arch:
        return cls.parse(platform.machine())

    @property
    def debian(self) -> str:
        """Debian's name for the architecture."""
        return {"x86_64": "amd64", "aarch64": "arm64"}[self.value]


class Firmware(StrEnum):
    """How the guest firmware boots: legacy BIOS (SeaBIOS) or UEFI."""

    BIOS = "bios"
    UEFI = "uefi"


class Accel(StrEnum):
    """QEMU accelerator choice; ``auto`` probes whether KVM really works."""

    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"
