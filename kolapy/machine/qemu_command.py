"""The QEMU command line of one machine, built as pure data (no QEMU needed to test it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kolapy.distro import get_distro
from kolapy.enums import Accel, Firmware
from kolapy.hostsvc.forward import guestfwd_options
from kolapy.machine.platform import IgnitionInjection, PlatformProfile, ResolvedFirmware
from kolapy.machine.spec import DiskSpec, MachineSpec

HARNESS_JOURNAL_PORT = "kolapy.journal"
"""virtio-serial port the harness's Ignition unit streams ``journalctl -o json`` to."""

FW_CFG_IGNITION = "opt/com.coreos/config"

ISO_PORTS = ("testisocompletion", "nestos.liveiso-success")
"""virtio-serial ports of ISO machines, as kola's testiso has them: the scenarios'
progress (``live-test-OK`` ...) and the live ISO's autologin success."""


@dataclass(frozen=True)
class MachinePaths:
    """Every file of one machine, derived from its work directory.

    Unix sockets live in ``sockdir`` because a socket path is limited to 107 bytes
    and pytest's tmp directories can be longer than that.
    """

    workdir: Path
    sockdir: Path

    @classmethod
    def for_workdir(cls, workdir: Path, sockdir: Path | None = None) -> MachinePaths:
        return cls(workdir, sockdir or workdir)

    @property
    def overlay(self) -> Path:
        return self.workdir / "disk0.qcow2"

    def extra_disk(self, index: int) -> Path:
        return self.workdir / f"disk{index + 1}.qcow2"

    @property
    def live_iso(self) -> Path:
        """ISO machines: the private copy of the ISO (config embedded)."""
        return self.workdir / "live.iso"

    def port_file(self, port: str) -> Path:
        """Where a testiso virtio port's output goes (``testisocompletion`` ...)."""
        return self.workdir / f"port-{port}.txt"

    @property
    def ignition(self) -> Path:
        return self.workdir / "config.ign"

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.txt"

    @property
    def console_socket(self) -> Path:
        return self.sockdir / "console.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.sockdir / "qmp.sock"

    @property
    def emergency_journal(self) -> Path:
        return self.workdir / "ignition-journal.json"

    @property
    def journal(self) -> Path:
        return self.workdir / "journal.json"

    @property
    def uefi_vars(self) -> Path:
        return self.workdir / "uefi-vars.fd"

    @property
    def qemu_stderr(self) -> Path:
        return self.workdir / "qemu-stderr.txt"


@dataclass(frozen=True)
class QemuCommand:
    """Inputs of one QEMU invocation; :meth:`argv` renders the command line.

    ``accel`` must already be resolved (kvm or tcg, never auto).
    """

    spec: MachineSpec
    profile: PlatformProfile
    accel: Accel
    paths: MachinePaths
    ssh_port: int
    firmware: ResolvedFirmware
    incoming: str | None = None
    """``-incoming`` URI: start paused, loading a saved machine (:mod:`kolapy.machine.restore`)."""

    def argv(self) -> list[str]:
        """The full argument vector, binary first."""
        if self.accel == Accel.AUTO:
            raise ValueError("QemuCommand needs a resolved accelerator, not auto")
        spec, p = self.spec, self.paths
        name = spec.name or p.workdir.name
        args = [
            self.profile.qemu_binary,
            "-name", f"kolapy-{name}",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-accel", str(self.accel),
            "-machine", self.profile.machine_type(spec.firmware),
            "-cpu", self.profile.cpu(self.accel),
            "-smp", str(spec.cpus),
            "-m", str(spec.memory_mib),
            *self._firmware_args(),
            # cache=unsafe: the overlays are thrown away, so guest flushes need not reach
            # the host disk (a clean QEMU exit still writes everything).
            "-drive",
            f"if=none,id=disk0,file={p.overlay},format=qcow2,discard=unmap,cache=unsafe",
            "-device", f"virtio-blk-pci,drive=disk0,bootindex={self._disk0_bootindex()}",
            *self._iso_args(),
            *self._extra_disk_args(),
            *self._ignition_args(),
            "-nic",
            "user,model=virtio-net-pci,restrict=on,"
            f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22{guestfwd_options(p.sockdir)}",
            *self._extra_nic_args(),
            # The log file always has everything; the socket allows interactive pexpect.
            # Every file is appended to: a power-cycled machine's next QEMU continues it
            # (a first launch starts from removed files).
            "-chardev",
            f"socket,id=con0,path={p.console_socket},server=on,wait=off,"
            f"logfile={p.console_log},logappend=on",
            "-serial", "chardev:con0",
            "-device", "virtio-serial-pci,id=vserial0",
            "-chardev", f"file,id=ignjournal,path={p.emergency_journal},append=on",
            "-device",
            "virtserialport,bus=vserial0.0,chardev=ignjournal,"
            f"name={get_distro(spec.distro).journal_port}",
            "-chardev", f"file,id=journal,path={p.journal},append=on",
            "-device",
            f"virtserialport,bus=vserial0.0,chardev=journal,name={HARNESS_JOURNAL_PORT}",
            *self._iso_port_args(),
            "-device", "virtio-rng-pci",
            "-chardev", f"socket,id=qmp0,path={p.qmp_socket},server=on,wait=off",
            "-mon", "chardev=qmp0,mode=control",
        ]
        if spec.no_reboot:
            args.append("-no-reboot")
        if self.incoming:
            args += ["-incoming", self.incoming]
        return args

    def _disk0_bootindex(self) -> int:
        # SeaBIOS boots only the first hard disk in the boot order (drive 0x80): with
        # the blank disk0 first, an ISO attached as a disk never booted under BIOS
        # ("Boot failed: not a bootable disk", then floppy).  So the ISO disk goes first.
        return 2 if self.spec.boot_media == "iso-as-disk" else 1

    def _iso_args(self) -> list[str]:
        if not self.spec.iso_attached:
            return []
        iso = self.paths.live_iso
        if self.spec.boot_media == "iso-as-disk":
            return ["-drive", f"if=none,id=livedisk,file={iso},format=raw,readonly=on",
                    "-device", "virtio-blk-pci,drive=livedisk,bootindex=1"]
        # virtio-scsi: the firmware boots it and the Debian cloud kernel has its driver
        # (it has no AHCI, q35's IDE controller).
        return ["-device", "virtio-scsi-pci,id=scsi0",
                "-drive", f"if=none,id=livecd,file={iso},format=raw,media=cdrom,readonly=on",
                "-device", "scsi-cd,bus=scsi0.0,drive=livecd,bootindex=2"]

    def _iso_port_args(self) -> list[str]:
        if not self.spec.is_iso:
            return []
        args: list[str] = []
        for i, port in enumerate(ISO_PORTS):
            args += ["-chardev", f"file,id=isoport{i},path={self.paths.port_file(port)},"
                              "append=on",
                     "-device", f"virtserialport,bus=vserial0.0,chardev=isoport{i},name={port}"]
        return args

    def _firmware_args(self) -> list[str]:
        fw = self.firmware
        if self.spec.firmware == Firmware.BIOS or fw.code is None:
            return []
        return [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={fw.code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={self.paths.uefi_vars}",
        ]

    def _ignition_args(self) -> list[str]:
        # Always injected: the harness fragment (SSH key, journal unit) is in every config.
        if self.profile.ignition_injection == IgnitionInjection.FW_CFG:
            return ["-fw_cfg", f"name={FW_CFG_IGNITION},file={self.paths.ignition}"]
        # s390x/ppc64le: Ignition reads a disk whose serial is "ignition".
        return [
            "-drive", f"if=none,id=ignition,file={self.paths.ignition},format=raw,readonly=on",
            "-device", "virtio-blk-pci,drive=ignition,serial=ignition",
        ]

    def _extra_nic_args(self) -> list[str]:
        args: list[str] = []
        for i in range(self.spec.additional_nics):
            # Each its own subnet: two NICs on slirp's default 10.0.2.0/24 make the
            # guest route SSH replies out of the wrong NIC.
            args += ["-nic", f"user,model=virtio-net-pci,restrict=on,net=10.0.{3 + i}.0/24"]
        for i, nic in enumerate(self.spec.private_nics):
            args += nic.qemu_args(i)
        return args

    def _extra_disk_args(self) -> list[str]:
        args: list[str] = []
        for i, disk in enumerate(self.spec.additional_disks):
            drive = f"disk{i + 1}"
            args += ["-drive", f"if=none,id={drive},file={self.paths.extra_disk(i)},"
                     "format=qcow2,cache=unsafe"]
            args += ["-device", disk_device(disk, drive, i)]
        return args


def disk_device(disk: DiskSpec, drive: str, index: int) -> str:
    """The ``-device`` value for an additional disk on its channel."""
    serial = disk.serial or f"disk{index + 1}"
    if disk.channel == "nvme":
        return f"nvme,drive={drive},serial={serial}"
    if disk.channel == "virtio":
        return f"virtio-blk-pci,drive={drive},serial={serial}"
    raise ValueError(f"unsupported disk channel {disk.channel!r} (choose virtio or nvme)")
