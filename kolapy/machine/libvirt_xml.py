"""Libvirt domain and network XML of one machine, built as pure data from its MachineSpec.

The same :class:`~kolapy.machine.spec.MachineSpec`, platform profile and
:class:`~kolapy.machine.qemu_command.MachinePaths` that give the QEMU command line
give the domain XML here (one source of truth); nothing in this module talks to
libvirt, so every choice is unit-tested without a daemon.

What libvirt cannot express itself (user-mode networking with a host forward,
``-fw_cfg`` on a libvirt without ``<sysinfo type='fwcfg'>``, NVMe disks on libvirt
9.0) goes into ``<qemu:commandline>``, the same arguments the QEMU backend uses.

Two ways of reaching the domain's files and the guest:

* files (local hosts): disks, Ignition config and UEFI vars are this machine's
  files, the console and journals are files the domain's host writes here;
* pool (any host): ``volumes`` maps each local file the domain reads to the path of
  its volume on the domain's host, and with ``streams`` the console and journal
  ports are a pty and unix sockets on the domain's host that
  :mod:`kolapy.machine.libvirt_streams` reads through libvirt.

The first NIC is user-mode with a host forward of SSH (``network`` empty) or on the
libvirt network ``network``, where the guest's DHCP lease gives its address.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from kolapy.distro import get_distro
from kolapy.enums import Accel, Firmware
from kolapy.hostsvc.forward import guestfwd_options
from kolapy.machine.platform import IgnitionInjection, PlatformProfile, ResolvedFirmware
from kolapy.machine.qemu_command import (
    FW_CFG_IGNITION,
    HARNESS_JOURNAL_PORT,
    ISO_PORTS,
    MachinePaths,
    disk_device,
)
from kolapy.machine.spec import MachineSpec

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
KOLAPY_NS = "https://kolapy.dev/libvirt/1"
"""Namespace of the domain's ``<metadata>``: the URI the run placed it through."""
FWCFG_SYSINFO_VERSION = 6_005_000
"""libvirt 6.5.0 added ``<sysinfo type='fwcfg'>``; older ones get ``-fw_cfg`` passed through."""

ET.register_namespace("qemu", QEMU_NS)
ET.register_namespace("kolapy", KOLAPY_NS)


def supports_fwcfg_sysinfo(libvirt_version: int) -> bool:
    """True when libvirt (``virConnectGetLibVersion``: major*1e6+minor*1e3+micro) has it."""
    return libvirt_version >= FWCFG_SYSINFO_VERSION


def domain_name(run: str, machine: str) -> str:
    """``kolapy-<run>-<machine>``: every kolapy domain, volume and network starts ``kolapy-``."""
    return f"kolapy-{run}-{machine}"


@dataclass(frozen=True)
class DomainInputs:
    """Everything the domain XML depends on (``accel`` resolved: kvm or tcg)."""

    spec: MachineSpec
    profile: PlatformProfile
    accel: Accel
    paths: MachinePaths
    firmware: ResolvedFirmware
    name: str
    """The libvirt domain name (:func:`domain_name`)."""
    ssh_port: int
    """Host port forwarded (127.0.0.1, user-mode networking) to the guest's port 22."""
    fwcfg_sysinfo: bool = True
    """Ignition through ``<sysinfo type='fwcfg'>`` (False: a ``-fw_cfg`` pass-through)."""
    private_networks: tuple[str, ...] = ()
    """Libvirt network names of ``spec.private_nics`` (same order): a cluster's segment."""
    run_as_root: bool = True
    """Run QEMU as root without relabelling (a static DAC label): the overlays'
    backing image and the work directory stay as they are (the user's image is
    never chowned) and QEMU can reach them under a private temporary directory."""
    network: str = ""
    """The libvirt network of the first NIC (SSH to its DHCP lease); empty: a user-mode
    NIC with ``ssh_port`` forwarded from the host's 127.0.0.1."""
    volumes: dict[Path, str] = field(default_factory=dict)
    """Local file -> its volume's path on the domain's host (pool storage); a file not
    in it is used where it is (file storage)."""
    streams: bool = False
    """Console and journal ports as ptys read through libvirt streams, not as files
    the domain's host writes (pool storage: nothing of the domain is a local file)."""
    placed_on: str = ""
    """The URI the machine was placed through (``<metadata>``, read back by placement)."""

    def host_path(self, local: Path) -> str:
        """Where the domain's host finds ``local``."""
        return self.volumes.get(local, str(local))


def domain_xml(inp: DomainInputs) -> str:
    """The ``<domain>`` document for ``virDomainCreateXML`` (a transient domain)."""
    if inp.accel == Accel.AUTO:
        raise ValueError("domain_xml needs a resolved accelerator, not auto")
    spec, p = inp.spec, inp.paths
    dom = ET.Element("domain", type="kvm" if inp.accel == Accel.KVM else "qemu")
    _text(dom, "name", inp.name)
    if inp.placed_on:
        meta = ET.SubElement(dom, "metadata")
        ET.SubElement(meta, f"{{{KOLAPY_NS}}}placement", uri=inp.placed_on)
    _text(dom, "memory", str(spec.memory_mib), unit="MiB")
    _text(dom, "vcpu", str(spec.cpus))
    _os(dom, inp)
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    _cpu(dom, inp)
    if inp.profile.ignition_injection == IgnitionInjection.FW_CFG and inp.fwcfg_sysinfo:
        sysinfo = ET.SubElement(dom, "sysinfo", type="fwcfg")
        # A file, never the value itself: libvirt 9.0 XML-escapes an entry's value into
        # QEMU's string= (JSON quotes arrive as &quot;) and leaves its commas unescaped.
        _text(sysinfo, "entry", None, name=FW_CFG_IGNITION, file=inp.host_path(p.ignition))
    ET.SubElement(dom, "clock", offset="utc")
    # The guest's own reboots restart it; a poweroff or crash ends the domain (and,
    # being transient, removes it).
    _text(dom, "on_poweroff", "destroy")
    _text(dom, "on_reboot", "restart")
    _text(dom, "on_crash", "destroy")
    if inp.run_as_root:
        label = ET.SubElement(dom, "seclabel", type="static", model="dac", relabel="no")
        _text(label, "label", "+0:+0")
    devices = ET.SubElement(dom, "devices")
    _text(devices, "emulator", _emulator(inp.profile.qemu_binary))
    # SeaBIOS tries only the first hard disk in boot order: an ISO attached as a disk
    # must come first, the blank install target after it (as the QEMU backend has it).
    as_disk = spec.is_iso and spec.boot_media == "iso-as-disk"
    _disk(devices, inp.host_path(p.overlay), "vda", boot=2 if as_disk else 1)
    _iso(devices, inp)
    for i, disk in enumerate(spec.additional_disks):
        if disk.channel == "virtio":
            _disk(devices, inp.host_path(p.extra_disk(i)), f"vd{chr(ord('b') + i)}",
                  serial=disk.serial or f"disk{i + 1}")
    if inp.profile.ignition_injection == IgnitionInjection.VIRTIO_BLK:
        _disk(devices, inp.host_path(p.ignition), "vdz", fmt="raw", serial="ignition",
              readonly=True)
    if inp.network:
        iface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(iface, "source", network=inp.network)
        ET.SubElement(iface, "model", type="virtio")
    for nic, network in zip(spec.private_nics, inp.private_networks, strict=True):
        iface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(iface, "source", network=network)
        ET.SubElement(iface, "mac", address=nic.mac)
        ET.SubElement(iface, "model", type="virtio")
    # A pty for `virsh console` and the console stream, every byte also in the log file.
    # (streams: only the pty, read through libvirt; the log would be a host file)
    serial = ET.SubElement(devices, "serial", type="pty")
    if not inp.streams:
        ET.SubElement(serial, "log", file=str(p.console_log), append="on")
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "controller", type="virtio-serial", index="0")
    for path, port in channel_ports(inp):
        _channel(devices, None if inp.streams else path, port)
    rng = ET.SubElement(devices, "rng", model="virtio")
    _text(rng, "backend", "/dev/urandom", model="random")
    ET.SubElement(devices, "memballoon", model="none")
    args = qemu_passthrough(inp)
    if args:
        cmdline = ET.SubElement(dom, f"{{{QEMU_NS}}}commandline")
        for arg in args:
            ET.SubElement(cmdline, f"{{{QEMU_NS}}}arg", value=arg)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def channel_ports(inp: DomainInputs) -> list[tuple[Path, str]]:
    """(local file, virtio port name) of every channel: the journals, ISO ports."""
    spec, p = inp.spec, inp.paths
    ports = [(p.emergency_journal, get_distro(spec.distro).journal_port),
             (p.journal, HARNESS_JOURNAL_PORT)]
    if spec.is_iso:
        ports += [(p.port_file(port), port) for port in ISO_PORTS]
    return ports


def qemu_passthrough(inp: DomainInputs) -> list[str]:
    """The QEMU arguments libvirt cannot express (``<qemu:commandline>``)."""
    spec, p = inp.spec, inp.paths
    # QEMU creates libvirt's devices first, so these NICs get explicit PCI slots
    # from _NIC_SLOT up, above the ones libvirt hands out (it counts up from 2).
    args: list[str] = []
    if not inp.network:
        # User-mode networking with the SSH host forward (and the harness's guest
        # forwards to this machine's unix sockets: files mode only), as on QEMU.
        fwd = "" if inp.streams else guestfwd_options(p.sockdir)
        args += ["-netdev",
                 f"user,id=kolanet0,restrict=on,hostfwd=tcp:127.0.0.1:{inp.ssh_port}-:22{fwd}",
                 "-device",
                 f"virtio-net-pci,netdev=kolanet0,bus={_root_bus(inp)},addr={_NIC_SLOT:#x}"]
    for i in range(spec.additional_nics):
        args += ["-netdev", f"user,id=kolanet{i + 1},restrict=on,net=10.0.{3 + i}.0/24",
                 "-device", f"virtio-net-pci,netdev=kolanet{i + 1},bus={_root_bus(inp)},"
                 f"addr={_NIC_SLOT + 1 + i:#x}"]
    if inp.profile.ignition_injection == IgnitionInjection.FW_CFG and not inp.fwcfg_sysinfo:
        args += ["-fw_cfg", f"name={FW_CFG_IGNITION},file={inp.host_path(p.ignition)}"]
    for i, disk in enumerate(spec.additional_disks):
        if disk.channel != "virtio":
            drive = f"kola-disk{i + 1}"
            args += ["-drive", f"if=none,id={drive},file={inp.host_path(p.extra_disk(i))},"
                     "format=qcow2,cache=unsafe",
                     "-device", disk_device(disk, drive, i)]
    return args


def network_xml(name: str, bridge: str) -> str:
    """An isolated network (no forward, no host address, no DHCP): a private segment.

    The members address themselves (:func:`kolapy.machine.privnet.privnet_fragment`).
    """
    net = ET.Element("network")
    _text(net, "name", name)
    ET.SubElement(net, "bridge", name=bridge, stp="off", delay="0")
    ET.indent(net)
    return ET.tostring(net, encoding="unicode") + "\n"


def bridge_name(network: str) -> str:
    """The Linux bridge of libvirt network ``network``: 15 characters, unique per name."""
    return "kolabr" + hashlib.sha256(network.encode()).hexdigest()[:9]


_NIC_SLOT = 0x18


def _root_bus(inp: DomainInputs) -> str:
    """The PCI root bus name QEMU gives libvirt's machine type (pc: pci.0, else pcie.0)."""
    machine = inp.profile.machine_type(inp.spec.firmware)
    return "pci.0" if machine.split(",")[0] in ("pc", "pc-i440fx") else "pcie.0"


# ---- parts --------------------------------------------------------------------------------


def _text(parent: ET.Element, tag: str, text: str | None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el


def _emulator(binary: str) -> str:
    import shutil

    return shutil.which(binary) or f"/usr/bin/{binary}"


def _os(dom: ET.Element, inp: DomainInputs) -> None:
    os_ = ET.SubElement(dom, "os")
    _text(os_, "type", "hvm", arch=str(inp.spec.arch),
          machine=inp.profile.machine_type(inp.spec.firmware))
    fw = inp.firmware
    if inp.spec.firmware == Firmware.UEFI and fw.code is not None:
        _text(os_, "loader", str(fw.code), readonly="yes", type="pflash")
        nvram = _text(os_, "nvram", inp.host_path(inp.paths.uefi_vars))
        if fw.vars_template is not None:
            nvram.set("template", str(fw.vars_template))


def _cpu(dom: ET.Element, inp: DomainInputs) -> None:
    """The profile's ``-cpu`` value in libvirt terms (``host``, ``max``, or a model)."""
    model, *features = inp.profile.cpu(inp.accel).split(",")
    if model == "host":
        ET.SubElement(dom, "cpu", mode="host-passthrough")
        return
    cpu = ET.SubElement(dom, "cpu", mode="maximum" if model == "max" else "custom")
    if model != "max":
        cpu.set("match", "exact")
        _text(cpu, "model", model, fallback="forbid")
    for feature in features:  # "pauth=off" -> disabled feature
        fname, _, value = feature.partition("=")
        ET.SubElement(cpu, "feature", policy="disable" if value == "off" else "require",
                      name=fname)


def _disk(devices: ET.Element, path: str, target: str, *, boot: int | None = None,
          fmt: str = "qcow2", serial: str = "", readonly: bool = False,
          device: str = "disk", bus: str = "virtio") -> None:
    disk = ET.SubElement(devices, "disk", type="file", device=device)
    driver = ET.SubElement(disk, "driver", name="qemu", type=fmt)
    if not readonly:
        # The overlays are thrown away: guest flushes need not reach the host disk.
        driver.set("cache", "unsafe")
        driver.set("discard", "unmap")
    ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=target, bus=bus)
    if readonly:
        ET.SubElement(disk, "readonly")
    if serial:
        _text(disk, "serial", serial)
    if boot is not None:
        ET.SubElement(disk, "boot", order=str(boot))


def _iso(devices: ET.Element, inp: DomainInputs) -> None:
    if not inp.spec.is_iso:
        return
    iso = inp.host_path(inp.paths.live_iso)
    if inp.spec.boot_media == "iso-as-disk":
        _disk(devices, iso, "vdy", boot=1, fmt="raw", readonly=True)
        return
    ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    _disk(devices, iso, "sda", boot=2, fmt="raw", readonly=True, device="cdrom", bus="scsi")


def _channel(devices: ET.Element, path: Path | None, port: str) -> None:
    """A virtio port written to ``path`` on the domain's host, or (None) a unix socket
    libvirt names and ``virDomainOpenChannel`` reaches (it opens no pty channel)."""
    if path is None:
        channel = ET.SubElement(devices, "channel", type="unix")
        ET.SubElement(channel, "source", mode="bind")
    else:
        channel = ET.SubElement(devices, "channel", type="file")
        ET.SubElement(channel, "source", path=str(path))
    ET.SubElement(channel, "target", type="virtio", name=port)


def nat_network_xml(name: str, bridge: str, subnet: int) -> str:
    """A NAT network with DHCP on ``10.231.<subnet>.0/24``: the guests' first NIC, SSH to
    each guest's lease.  The host is ``.1``; leases are handed out from ``.10``."""
    if not 0 <= subnet <= 255:
        raise ValueError(f"subnet {subnet} is not 0-255")
    net = ET.Element("network")
    _text(net, "name", name)
    ET.SubElement(net, "forward", mode="nat")
    ET.SubElement(net, "bridge", name=bridge, stp="off", delay="0")
    prefix = f"10.231.{subnet}"
    ip = ET.SubElement(net, "ip", address=f"{prefix}.1", netmask="255.255.255.0")
    dhcp = ET.SubElement(ip, "dhcp")
    ET.SubElement(dhcp, "range", start=f"{prefix}.10", end=f"{prefix}.250")
    ET.indent(net)
    return ET.tostring(net, encoding="unicode") + "\n"


def first_subnet(name: str) -> int:
    """Where a NAT network named ``name`` first tries its subnet (then the next ones)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 256
