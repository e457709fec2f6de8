"""Libvirt domain and network XML of one machine, built as pure data from its MachineSpec.

The same :class:`~kolapy.machine.spec.MachineSpec`, platform profile and
:class:`~kolapy.machine.qemu_command.MachinePaths` that give the QEMU command line
give the domain XML here (one source of truth); nothing in this module talks to
libvirt, so every choice is unit-tested without a daemon.

What libvirt cannot express itself (user-mode networking with a host forward,
``-fw_cfg`` on a libvirt without ``<sysinfo type='fwcfg'>``, NVMe disks on libvirt
9.0) goes into ``<qemu:commandline>``, the same arguments the QEMU backend uses.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
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
FWCFG_SYSINFO_VERSION = 6_005_000
"""libvirt 6.5.0 added ``<sysinfo type='fwcfg'>``; older ones get ``-fw_cfg`` passed through."""

ET.register_namespace("qemu", QEMU_NS)


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


def domain_xml(inp: DomainInputs) -> str:
    """The ``<domain>`` document for ``virDomainCreateXML`` (a transient domain)."""
    if inp.accel == Accel.AUTO:
        raise ValueError("domain_xml needs a resolved accelerator, not auto")
    spec, p = inp.spec, inp.paths
    dom = ET.Element("domain", type="kvm" if inp.accel == Accel.KVM else "qemu")
    _text(dom, "name", inp.name)
    _text(dom, "memory", str(spec.memory_mib), unit="MiB")
    _text(dom, "vcpu", str(spec.cpus))
    _os(dom, inp)
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    _cpu(dom, inp)
    if inp.profile.ignition_injection == IgnitionInjection.FW_CFG and inp.fwcfg_sysinfo:
        sysinfo = ET.SubElement(dom, "sysinfo", type="fwcfg")
        _text(sysinfo, "entry", None, name=FW_CFG_IGNITION, file=str(p.ignition))
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
    _disk(devices, p.overlay, "vda", boot=1)
    _iso(devices, inp)
    for i, disk in enumerate(spec.additional_disks):
        if disk.channel == "virtio":
            _disk(devices, p.extra_disk(i), f"vd{chr(ord('b') + i)}",
                  serial=disk.serial or f"disk{i + 1}")
    if inp.profile.ignition_injection == IgnitionInjection.VIRTIO_BLK:
        _disk(devices, p.ignition, "vdz", fmt="raw", serial="ignition", readonly=True)
    for nic, network in zip(spec.private_nics, inp.private_networks, strict=True):
        iface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(iface, "source", network=network)
        ET.SubElement(iface, "mac", address=nic.mac)
        ET.SubElement(iface, "model", type="virtio")
    # A pty for `virsh console` and the console stream, every byte also in the log file.
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=str(p.console_log), append="on")
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "controller", type="virtio-serial", index="0")
    _channel(devices, p.emergency_journal, get_distro(spec.distro).journal_port)
    _channel(devices, p.journal, HARNESS_JOURNAL_PORT)
    if spec.is_iso:
        for port in ISO_PORTS:
            _channel(devices, p.port_file(port), port)
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


def qemu_passthrough(inp: DomainInputs) -> list[str]:
    """The QEMU arguments libvirt cannot express (``<qemu:commandline>``)."""
    spec, p = inp.spec, inp.paths
    # QEMU creates libvirt's devices first, so these NICs get explicit PCI slots
    # from _NIC_SLOT up, above the ones libvirt hands out (it counts up from 2).
    args = [
        # User-mode networking with the SSH host forward (and the harness's guest
        # forwards), exactly as the QEMU backend has it.
        "-netdev",
        "user,id=kolanet0,restrict=on,"
        f"hostfwd=tcp:127.0.0.1:{inp.ssh_port}-:22{guestfwd_options(p.sockdir)}",
        "-device", f"virtio-net-pci,netdev=kolanet0,bus={_root_bus(inp)},addr={_NIC_SLOT:#x}",
    ]
    for i in range(spec.additional_nics):
        args += ["-netdev", f"user,id=kolanet{i + 1},restrict=on,net=10.0.{3 + i}.0/24",
                 "-device", f"virtio-net-pci,netdev=kolanet{i + 1},bus={_root_bus(inp)},"
                 f"addr={_NIC_SLOT + 1 + i:#x}"]
    if inp.profile.ignition_injection == IgnitionInjection.FW_CFG and not inp.fwcfg_sysinfo:
        args += ["-fw_cfg", f"name={FW_CFG_IGNITION},file={p.ignition}"]
    for i, disk in enumerate(spec.additional_disks):
        if disk.channel != "virtio":
            drive = f"kola-disk{i + 1}"
            args += ["-drive", f"if=none,id={drive},file={p.extra_disk(i)},"
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
        nvram = _text(os_, "nvram", str(inp.paths.uefi_vars))
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


def _disk(devices: ET.Element, path: Path, target: str, *, boot: int | None = None,
          fmt: str = "qcow2", serial: str = "", readonly: bool = False,
          device: str = "disk", bus: str = "virtio") -> None:
    disk = ET.SubElement(devices, "disk", type="file", device=device)
    driver = ET.SubElement(disk, "driver", name="qemu", type=fmt)
    if not readonly:
        # The overlays are thrown away: guest flushes need not reach the host disk.
        driver.set("cache", "unsafe")
        driver.set("discard", "unmap")
    ET.SubElement(disk, "source", file=str(path))
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
    iso = inp.paths.live_iso
    if inp.spec.boot_media == "iso-as-disk":
        _disk(devices, iso, "vdy", boot=2, fmt="raw", readonly=True)
        return
    ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    _disk(devices, iso, "sda", boot=2, fmt="raw", readonly=True, device="cdrom", bus="scsi")


def _channel(devices: ET.Element, path: Path, port: str) -> None:
    channel = ET.SubElement(devices, "channel", type="file")
    ET.SubElement(channel, "source", path=str(path))
    ET.SubElement(channel, "target", type="virtio", name=port)
