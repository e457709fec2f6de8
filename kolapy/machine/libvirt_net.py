"""SSH through a libvirt network: the run's NAT network, and the guest's DHCP lease.

With ``--libvirt-network nat`` (the default for a remote URI) the first NIC of every
domain is on a transient NAT network of the run, ``kolapy-<run>-<worker>-nat``, made
when the worker's first machine starts on a host and destroyed with the run's other
objects (its own address range in ``10.231.0.0/16``: the next /24 is tried while
libvirt finds one in use).  ``--libvirt-network NAME`` uses an existing network
instead.  Either way the guest's address is its newest DHCP lease on that network,
polled until the guest has one; SSH goes straight to it on port 22.
"""

from __future__ import annotations

import logging
import os
import threading
import xml.etree.ElementTree as ET
from typing import Any

from kolapy.errors import InfraError
from kolapy.machine import libvirt_hosts as hosts
from kolapy.machine.libvirt_xml import bridge_name, first_subnet, nat_network_xml

log = logging.getLogger("kolapy.machine")

_SUBNET_TRIES = 16
_made: dict[str, str] = {}
_lock = threading.Lock()


def run_network(uri: str) -> str:
    """The name of this worker's NAT network on ``uri``, made on first use."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    name = f"kolapy-{hosts.RUN_ID}-{worker}-nat"
    with _lock:
        if uri in _made:
            return _made[uri]
        libvirt = hosts._libvirt()
        conn = hosts.connect(uri)
        first = first_subnet(name)
        last_err = ""
        for i in range(_SUBNET_TRIES):
            subnet = (first + i) % 256
            hosts.register(uri, "network", name)
            try:
                net = conn.networkCreateXML(nat_network_xml(name, bridge_name(name), subnet))
            except libvirt.libvirtError as exc:
                hosts.forget(uri, "network", name)
                last_err = str(exc)
                if "in use" in last_err or "overlap" in last_err:
                    continue  # another network has this range: the next one
                break
            hosts.register(uri, "network", name, net)
            log.info("libvirt %s: NAT network %s on 10.231.%d.0/24", uri, name, subnet)
            _made[uri] = name
            return name
        raise InfraError(f"libvirt {uri}: cannot create network {name}: {last_err}")


def check_network(uri: str, name: str) -> None:
    """An existing network the user named: it must be there and active."""
    libvirt = hosts._libvirt()
    try:
        net = hosts.connect(uri).networkLookupByName(name)
        active = net.isActive()
    except libvirt.libvirtError as exc:
        raise InfraError(f"libvirt {uri}: no network {name}: {exc}") from exc
    if not active:
        raise InfraError(f"libvirt {uri}: network {name} is not active (virsh net-start {name})")


def network_nics(domain_xml: str) -> list[tuple[str, str]]:
    """(network name, MAC) of each ``<interface type='network'>`` of a live domain."""
    root = ET.fromstring(domain_xml)
    nics = []
    for iface in root.iterfind("devices/interface[@type='network']"):
        source, mac = iface.find("source"), iface.find("mac")
        if source is not None and mac is not None:
            nics.append((source.get("network", ""), mac.get("address", "").lower()))
    return nics


def newest_lease(leases: list[dict[str, Any]]) -> str:
    """The IPv4 address of the lease that expires last (the newest: a guest that asked
    again, e.g. after the initramfs, may still hold an older one); empty: none."""
    v4 = [lease for lease in leases if lease.get("type", 0) == 0 and lease.get("ipaddr")]
    if not v4:
        return ""
    return str(max(v4, key=lambda lease: int(lease.get("expirytime", 0)))["ipaddr"])


def lease_address(uri: str, dom: Any, network: str) -> str:
    """The guest's address on ``network`` from the DHCP leases (empty: no lease yet)."""
    libvirt = hosts._libvirt()
    conn = hosts.connect(uri)
    for net_name, mac in network_nics(dom.XMLDesc(0)):
        if net_name != network:
            continue
        try:
            leases = conn.networkLookupByName(net_name).DHCPLeases(mac, 0)
        except libvirt.libvirtError as exc:
            log.debug("libvirt %s: leases of %s: %s", uri, net_name, exc)
            return ""
        return newest_lease(list(leases or []))
    return ""
