"""The libvirt domain XML generated from a MachineSpec (no libvirt needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from kolapy.distro import get_distro
from kolapy.enums import Accel, Arch, Firmware
from kolapy.machine.libvirt_xml import (
    KOLAPY_NS,
    QEMU_NS,
    DomainInputs,
    bridge_name,
    channel_ports,
    domain_name,
    domain_xml,
    first_subnet,
    nat_network_xml,
    network_xml,
    supports_fwcfg_sysinfo,
)
from kolapy.machine.platform import ResolvedFirmware, load_platform
from kolapy.machine.privnet import PrivateNic
from kolapy.machine.qemu_command import FW_CFG_IGNITION, HARNESS_JOURNAL_PORT, MachinePaths
from kolapy.machine.spec import DiskSpec, MachineSpec

W = Path("/w/m1")


def _inputs(**spec_kw: object) -> DomainInputs:
    spec = MachineSpec(image=Path("/img/ref.qcow2"), name="m1", **spec_kw)  # type: ignore[arg-type]
    fw = (ResolvedFirmware(Firmware.UEFI, Path("/fw/CODE.fd"), Path("/fw/VARS.fd"))
          if spec.firmware == Firmware.UEFI else ResolvedFirmware(Firmware.BIOS))
    return DomainInputs(spec, load_platform(spec.arch), Accel.TCG, MachinePaths.for_workdir(W),
                        fw, name=domain_name("r1", "m1"), ssh_port=40022)


def _parse(inp: DomainInputs) -> ET.Element:
    return ET.fromstring(domain_xml(inp))


def _passthrough(dom: ET.Element) -> list[str]:
    return [a.get("value", "") for a in dom.iterfind(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg")]


def test_bios_tcg_domain_basics():
    dom = _parse(_inputs())
    assert dom.get("type") == "qemu"
    assert dom.findtext("name") == "kolapy-r1-m1"
    assert dom.findtext("memory") == "2048" and dom.find("memory").get("unit") == "MiB"
    assert dom.findtext("vcpu") == "2"
    assert dom.find("os/type").get("machine") == "pc"
    assert dom.find("os/loader") is None
    cpu = dom.find("cpu")
    assert cpu.get("mode") == "custom" and cpu.findtext("model") == "qemu64"
    disk = dom.find("devices/disk")
    assert disk.find("source").get("file") == str(W / "disk0.qcow2")
    assert disk.find("driver").get("cache") == "unsafe"
    assert disk.find("boot").get("order") == "1"
    # QEMU runs as root without relabelling: the backing image is never chowned.
    label = dom.find("seclabel")
    assert label.get("relabel") == "no" and label.findtext("label") == "+0:+0"
    assert dom.findtext("on_poweroff") == "destroy"


def test_kvm_uses_host_cpu():
    dom = _parse(replace(_inputs(), accel=Accel.KVM))
    assert dom.get("type") == "kvm"
    assert dom.find("cpu").get("mode") == "host-passthrough"


def test_auto_accel_is_rejected():
    with pytest.raises(ValueError, match="resolved"):
        domain_xml(replace(_inputs(), accel=Accel.AUTO))


def test_uefi_loader_and_per_domain_nvram():
    dom = _parse(_inputs(firmware=Firmware.UEFI))
    assert dom.find("os/type").get("machine") == "q35"
    loader = dom.find("os/loader")
    assert loader.text == "/fw/CODE.fd" and loader.get("readonly") == "yes"
    nvram = dom.find("os/nvram")
    assert nvram.text == str(W / "uefi-vars.fd") and nvram.get("template") == "/fw/VARS.fd"
    # q35's root bus for the passed-through NIC
    assert any("bus=pcie.0" in a for a in _passthrough(dom))


def test_aarch64_max_cpu_with_disabled_feature():
    inp = _inputs(arch=Arch.AARCH64, firmware=Firmware.UEFI)
    dom = _parse(inp)
    cpu = dom.find("cpu")
    assert cpu.get("mode") == "maximum"
    assert cpu.find("feature").attrib == {"policy": "disable", "name": "pauth"}
    assert dom.find("os/type").get("arch") == "aarch64"


def test_ignition_through_fwcfg_sysinfo():
    dom = _parse(_inputs())
    entry = dom.find("sysinfo[@type='fwcfg']/entry")
    assert entry.get("name") == FW_CFG_IGNITION == "opt/com.coreos/config"
    assert entry.get("file") == str(W / "config.ign")
    assert "-fw_cfg" not in _passthrough(dom)


def test_ignition_fallback_to_qemu_commandline_on_old_libvirt():
    assert supports_fwcfg_sysinfo(9_000_000) and supports_fwcfg_sysinfo(6_005_000)
    assert not supports_fwcfg_sysinfo(6_004_000)
    dom = _parse(replace(_inputs(), fwcfg_sysinfo=False))
    assert dom.find("sysinfo") is None
    args = _passthrough(dom)
    assert args[args.index("-fw_cfg") + 1] == f"name={FW_CFG_IGNITION},file={W / 'config.ign'}"


def test_serial_to_pty_and_log_file_and_journal_channels():
    dom = _parse(_inputs())
    serial = dom.find("devices/serial")
    assert serial.get("type") == "pty"
    assert serial.find("log").get("file") == str(W / "console.txt")
    channels = {c.find("target").get("name"): c.find("source").get("path")
                for c in dom.iterfind("devices/channel")}
    assert channels[HARNESS_JOURNAL_PORT] == str(W / "journal.json")
    assert channels[get_distro("nestos").journal_port] == str(W / "ignition-journal.json")


def test_user_mode_network_with_ssh_host_forward():
    args = _passthrough(_parse(_inputs(additional_nics=1)))
    netdevs = [args[i + 1] for i, a in enumerate(args) if a == "-netdev"]
    assert netdevs[0].startswith("user,id=kolanet0,restrict=on,")
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdevs[0]
    assert netdevs[1] == "user,id=kolanet1,restrict=on,net=10.0.3.0/24"
    devices = [args[i + 1] for i, a in enumerate(args) if a == "-device"]
    assert devices == ["virtio-net-pci,netdev=kolanet0,bus=pci.0,addr=0x18",
                       "virtio-net-pci,netdev=kolanet1,bus=pci.0,addr=0x19"]


def test_additional_disks_virtio_in_xml_nvme_passed_through():
    dom = _parse(_inputs(additional_disks=(DiskSpec(1), DiskSpec(2, serial="x", channel="nvme"))))
    disks = dom.findall("devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"]
    assert disks[1].findtext("serial") == "disk1"
    args = _passthrough(dom)
    assert f"if=none,id=kola-disk2,file={W / 'disk2.qcow2'},format=qcow2,cache=unsafe" in args
    assert "nvme,drive=kola-disk2,serial=x" in args


def test_iso_boots_from_scsi_cdrom_with_ports():
    dom = _parse(_inputs(boot_media="iso"))
    cdrom = dom.find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == str(W / "live.iso")
    assert cdrom.find("target").get("bus") == "scsi" and cdrom.find("readonly") is not None
    names = [c.find("target").get("name") for c in dom.iterfind("devices/channel")]
    assert "testisocompletion" in names


def test_private_nics_join_their_libvirt_network():
    nic = PrivateNic("52:54:00:00:01:00", "10.200.0.11", Path("/x"), Path("/y"))
    inp = replace(_inputs(private_nics=(nic,)), private_networks=("kolapy-r1-net1",))
    iface = _parse(inp).find("devices/interface[@type='network']")
    assert iface.find("source").get("network") == "kolapy-r1-net1"
    assert iface.find("mac").get("address") == nic.mac


def test_isolated_network_xml():
    net = ET.fromstring(network_xml("kolapy-r1-gw0-net1", bridge_name("kolapy-r1-gw0-net1")))
    assert net.findtext("name") == "kolapy-r1-gw0-net1"
    assert net.find("forward") is None and net.find("ip") is None  # isolated, no host address
    bridge = net.find("bridge").get("name")
    assert bridge.startswith("kolabr") and len(bridge) == 15  # Linux: at most 15
    assert bridge_name("kolapy-r1-gw1-net1") != bridge


def test_iso_as_disk_boots_first_install_disk_second():
    """SeaBIOS tries only the first hard disk in boot order: the ISO disk is first."""
    disks = {d.find("target").get("dev"): d for d in
             _parse(_inputs(boot_media="iso-as-disk")).iterfind("devices/disk")}
    assert disks["vdy"].find("boot").get("order") == "1"
    assert disks["vdy"].find("source").get("file") == str(W / "live.iso")
    assert disks["vda"].find("boot").get("order") == "2"
    # as a CD-ROM the install disk stays first (the firmware falls through to the CD)
    disks = {d.find("target").get("dev"): d for d in
             _parse(_inputs(boot_media="iso")).iterfind("devices/disk")}
    assert disks["vda"].find("boot").get("order") == "1"
    assert disks["sda"].find("boot").get("order") == "2"


def test_first_nic_on_a_libvirt_network_has_no_user_mode_nic():
    inp = replace(_inputs(), network="kolapy-r1-gw-nat")
    dom = _parse(inp)
    ifaces = dom.findall("devices/interface[@type='network']")
    assert [i.find("source").get("network") for i in ifaces] == ["kolapy-r1-gw-nat"]
    assert ifaces[0].find("model").get("type") == "virtio"
    assert ifaces[0].find("mac") is None  # libvirt picks one; the lease is looked up by it
    assert not any(a.startswith("user,") for a in _passthrough(dom))


def test_pool_storage_uses_volume_paths_and_streams():
    vols = {W / "disk0.qcow2": "/pool/kolapy-r1-m1-disk0.qcow2",
            W / "config.ign": "/pool/kolapy-r1-m1-config.ign",
            W / "uefi-vars.fd": "/pool/kolapy-r1-m1-vars.fd"}
    inp = replace(_inputs(firmware=Firmware.UEFI), volumes=vols, streams=True,
                  placed_on="qemu+ssh://lab1/system")
    dom = _parse(inp)
    assert dom.find("devices/disk/source").get("file") == "/pool/kolapy-r1-m1-disk0.qcow2"
    assert dom.find("sysinfo/entry").get("file") == "/pool/kolapy-r1-m1-config.ign"
    assert dom.find("os/nvram").text == "/pool/kolapy-r1-m1-vars.fd"
    # nothing of the domain is a file of this machine: the console is a pty
    serial = dom.find("devices/serial")
    assert serial.get("type") == "pty" and serial.find("log") is None
    channels = dom.findall("devices/channel")  # unix sockets libvirt names: OpenChannel
    assert channels and all(c.get("type") == "unix" and c.find("source").attrib ==
                            {"mode": "bind"} for c in channels)
    assert str(W) not in domain_xml(inp)
    # no guest forwards to this machine's unix sockets either
    user = [a for a in _passthrough(dom) if a.startswith("user,")]
    assert user and "guestfwd" not in user[0]
    assert dom.find(f"metadata/{{{KOLAPY_NS}}}placement").get("uri") == "qemu+ssh://lab1/system"


def test_channel_ports_cover_journals_and_iso_ports():
    names = [port for _, port in channel_ports(_inputs(boot_media="iso"))]
    assert HARNESS_JOURNAL_PORT in names and "testisocompletion" in names
    assert len(channel_ports(_inputs())) == 2


def test_nat_network_xml():
    net = ET.fromstring(nat_network_xml("kolapy-r1-gw-nat", "kolabrx", 7))
    assert net.find("forward").get("mode") == "nat"
    ip = net.find("ip")
    assert ip.get("address") == "10.231.7.1" and ip.get("netmask") == "255.255.255.0"
    assert ip.find("dhcp/range").attrib == {"start": "10.231.7.10", "end": "10.231.7.250"}
    assert 0 <= first_subnet("kolapy-r1-gw-nat") <= 255
    with pytest.raises(ValueError):
        nat_network_xml("x", "y", 256)
