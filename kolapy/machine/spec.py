"""What to boot: a frozen description of one machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolapy.enums import Arch, Firmware


@dataclass(frozen=True)
class DiskSpec:
    """An additional blank disk (kola ``AdditionalDisks``: ``5G:channel=nvme,serial=x``)."""

    size_gib: float
    serial: str = ""
    channel: str = "virtio"
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class MachineSpec:
    """Everything that decides how a machine boots.

    Two tests whose specs are equal may share one machine.  ``ignition`` is the
    *test's* config; the harness merges its own fragment in at boot.
    """

    image: Path
    arch: Arch = Arch.X86_64
    firmware: Firmware = Firmware.BIOS
    memory_mib: int = 2048
    cpus: int = 2
    disk_size_gib: float | None = None
    """Grow the overlay to this size (root should grow to fill it)."""
    ignition: Any = None
    """The test's Ignition config (a dict / Ignition builder), or None."""
    append_kargs: tuple[str, ...] = ()
    """Kernel arguments of every boot (written into the overlay's boot entries)."""
    append_firstboot_kargs: tuple[str, ...] = ()
    """Kernel arguments of the first boot only (the overlay's ``ignition.firstboot``)."""
    additional_disks: tuple[DiskSpec, ...] = ()
    additional_nics: int = 0
    """Extra user-mode NICs (kola ``AdditionalNics``), after the SSH one."""
    private_nics: tuple[Any, ...] = ()
    """NICs on a private segment shared with other machines (:mod:`kolapy.machine.privnet`)."""
    member_ignition: tuple[Any, ...] = ()
    """A cluster's spec only: member *i* boots ``ignition`` merged with
    ``member_ignition[i]`` (from the test's ``member_ignition``); empty: every member
    boots ``ignition``.  The pool gives each member a spec of its own without it."""
    distro: str = "nestos"
    boot_media: str = "disk"
    """``disk``: ``image`` is a disk image (qcow2/raw) booted through an overlay.
    ``iso``: ``image`` is a live ISO, booted as a CD-ROM from a private copy with the
    machine's config embedded (:mod:`kolapy.iso.media`); ``iso-as-disk``: the same
    copy attached as a disk (El Torito disabled, as kola's iso-as-disk).  ISO machines
    also get a blank ``disk0`` of ``disk_size_gib`` (default 12 GiB) to install to.
    ``iso-ejected``: an ISO machine after its install, its ISO taken out: ``disk0``
    boots, the virtio ports stay (:meth:`QemuMachine.power_cycle` switches to it)."""
    no_reboot: bool = False
    """QEMU exits when the guest reboots (``-no-reboot``) instead of resetting it in
    the same process: a live ISO install ends so, then the installed disk gets a cold
    start (:func:`kolapy.iso.scenarios.run_install`)."""
    embed_config: bool = True
    """ISO machines: embed the machine's Ignition config (False: boot the ISO without
    one, e.g. the live ISO's autologin mode; such a machine has no SSH)."""
    name: str = field(default="", compare=False)

    @property
    def is_iso(self) -> bool:
        """True when ``image`` is a live ISO."""
        return self.boot_media != "disk"

    @property
    def iso_attached(self) -> bool:
        """True when the live ISO is attached (as a CD-ROM or as a disk)."""
        return self.boot_media in ("iso", "iso-as-disk")
