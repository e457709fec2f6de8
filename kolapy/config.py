"""RunConfig: every run-wide setting, resolved once from options and environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolapy.disksize import parse_size
from kolapy.enums import Accel, Arch, Firmware

DEFAULT_MEMORY_MIB = 2048


@dataclass(frozen=True)
class RunConfig:
    """Settings of one kolapy run (the same on the controller and every xdist worker)."""

    image: Path | None = None
    iso: Path | None = None
    """``--nestos-iso``: machines boot this live ISO (config embedded in a private copy)."""
    """The OS image; None means the reference image for ``arch``."""
    arch: Arch = Arch.X86_64
    firmware: Firmware = Firmware.BIOS
    accel: Accel = Accel.AUTO
    memory_mib: int = DEFAULT_MEMORY_MIB
    disk_size: str | None = None
    """Every machine's disk (``10G``, or ``+5G`` over the image's size); None: the image's."""
    distro: str = "nestos"
    platform: str = "qemu"
    """``qemu`` (QEMU processes) or ``libvirt`` (domains on ``libvirt_uris``)."""
    libvirt_uris: tuple[str, ...] = ()
    """``--libvirt-uri`` (repeatable); empty means ``qemu:///system``."""
    libvirt_storage: str = "auto"
    """``--libvirt-storage``: auto, files or pool."""
    libvirt_pool: str = "kolapy"
    """``--libvirt-pool``: the storage pool of pool storage."""
    libvirt_network: str = "auto"
    """``--libvirt-network``: auto, user, nat or a libvirt network's name."""
    platform_file: Path | None = None
    """``--platform-file``: a user's platform profile (validated when the config is made)."""
    output_dir: Path | None = None
    patterns: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    denylist: Path | None = None
    denylist_tests: tuple[str, ...] = ()
    """kola's ``--denylist-test`` patterns: tests to skip, as denylist entries."""
    show_skipped: bool = False
    skip_console_checks: bool = False
    keep_failed: bool = False
    upgrade_repo: str | None = None
    """run-upgrade: the ostree archive repo (directory or URL) to upgrade to."""
    upgrade_ref: str | None = None
    """run-upgrade: the ref in ``upgrade_repo``."""
    restore: bool = True
    """Give tests with an equal machine spec clones of one saved machine (``--no-restore``)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_options(cls, get: Any) -> RunConfig:
        """Build from a getter ``get(dest, default)`` over parsed options.

        Environment fallbacks: ``KOLAPY_IMAGE``, ``KOLAPY_ARCH``, ``KOLAPY_ACCEL``.
        Raises ``ValueError`` naming a bad value.
        """
        image = get("nestos_image", None) or os.environ.get("KOLAPY_IMAGE") or None
        iso = get("nestos_iso", None) or None
        arch = get("kola_arch", None) or os.environ.get("KOLAPY_ARCH") or "x86_64"
        accel = get("kola_accel", None) or os.environ.get("KOLAPY_ACCEL") or "auto"
        firmware = get("kola_firmware", None) or "bios"
        try:
            accel_v = Accel(accel)
        except ValueError:
            raise ValueError(f"unknown accelerator {accel!r} (choose auto, kvm or tcg)") from None
        try:
            firmware_v = Firmware(firmware)
        except ValueError:
            raise ValueError(f"unknown firmware {firmware!r} (choose bios or uefi)") from None
        memory = int(get("kola_memory", None) or DEFAULT_MEMORY_MIB)
        if memory < 256:
            raise ValueError(f"--memory {memory} MiB is too small (at least 256)")
        disk_size = get("kola_disk_size", None) or None
        if disk_size:
            parse_size(disk_size)  # ValueError naming it
        platform = get("kola_platform", None) or "qemu"
        if platform not in ("qemu", "libvirt"):
            raise ValueError(f"unknown platform {platform!r} (choose qemu or libvirt)")
        uris = tuple(get("kola_libvirt_uris", None) or ())
        storage = get("kola_libvirt_storage", None) or "auto"
        lv_pool = get("kola_libvirt_pool", None) or "kolapy"
        lv_net = get("kola_libvirt_network", None) or "auto"
        given = [opt for opt, v in (("--libvirt-uri", uris),
                                    ("--libvirt-storage", storage != "auto"),
                                    ("--libvirt-pool", lv_pool != "kolapy"),
                                    ("--libvirt-network", lv_net != "auto")) if v]
        if given and platform != "libvirt":
            raise ValueError(f"{given[0]} needs --platform libvirt")
        if storage not in ("auto", "files", "pool"):
            raise ValueError(f"--libvirt-storage {storage!r}: choose auto, files or pool")
        for opt, name in (("--libvirt-pool", lv_pool), ("--libvirt-network", lv_net)):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", name):
                raise ValueError(f"{opt} {name!r}: not a libvirt object name")
        pfile = get("kola_platform_file", None) or None
        if pfile:
            from kolapy.machine.platform import load_platform_file

            load_platform_file(Path(pfile).expanduser().absolute(), arch)  # ValueError naming it
        out = get("kola_output_dir", None)
        deny = get("kola_denylist", None)
        return cls(
            image=Path(image).expanduser().absolute() if image else None,
            iso=Path(iso).expanduser().absolute() if iso else None,
            arch=Arch.parse(arch),
            firmware=firmware_v,
            accel=accel_v,
            memory_mib=memory,
            disk_size=disk_size,
            distro=get("kola_distro", None) or "nestos",
            output_dir=Path(out).absolute() if out else None,
            patterns=tuple(get("kola_patterns", None) or ()),
            tags=tuple(get("kola_tags", None) or ()),
            denylist=Path(deny).absolute() if deny else None,
            denylist_tests=tuple(get("kola_denylist_tests", None) or ()),
            show_skipped=bool(get("kola_show_skipped", False)),
            skip_console_checks=bool(get("kola_skip_console_checks", False)),
            keep_failed=bool(get("kola_keep_failed", False)),
            upgrade_repo=get("upgrade_repo", None) or None,
            upgrade_ref=get("upgrade_ref", None) or None,
            restore=not get("kola_no_restore", False),
            platform=platform,
            libvirt_uris=uris,
            libvirt_storage=storage,
            libvirt_pool=lv_pool,
            libvirt_network=lv_net,
            platform_file=Path(pfile).expanduser().absolute() if pfile else None,
        )

    def profile(self) -> Any:
        """The platform profile of this run's machines (``--platform-file`` or shipped)."""
        from kolapy.machine.platform import load_platform, load_platform_file

        if self.platform_file is not None:
            return load_platform_file(self.platform_file, self.arch)
        return load_platform(self.arch, self.platform)
