"""LibvirtMachine: the QEMU backend's machine, with libvirt owning the QEMU process.

Everything but the process is shared with :class:`~kolapy.machine.qemu.QemuMachine`
(by inheritance, not by copy): the overlay and Ignition config, the console log and
journal streams (files the domain writes), the boot watch, SSH readiness, reboots,
artifacts.  This class only replaces how the process starts, is watched and ends:
a transient domain ``kolapy-<run>-<machine>`` created from
:func:`~kolapy.machine.libvirt_xml.domain_xml` and destroyed on every way out.

Storage (:class:`~kolapy.machine.libvirt_hosts.LibvirtOptions`): with ``files`` the
domain uses this machine's files (a local URI only); with ``pool`` every file it reads
is a volume on its host (:mod:`~kolapy.machine.libvirt_storage`) and its console and
journals come through libvirt streams (:mod:`~kolapy.machine.libvirt_streams`), so
the host may be remote.  Network: SSH reaches the guest through the host forward of
a user-mode NIC on 127.0.0.1, or at its DHCP lease on a libvirt network
(:mod:`~kolapy.machine.libvirt_net`).

A machine of a run with several hosts that is not a cluster member is placed when
its domain is made (:func:`~kolapy.machine.libvirt_hosts.place`, under the placement
lock), on the host with the most free memory then.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from kolapy.enums import Accel
from kolapy.errors import BootError, InfraError
from kolapy.machine import libvirt_hosts as hosts
from kolapy.machine.base import timed
from kolapy.machine.libvirt_hosts import LibvirtOptions
from kolapy.machine.libvirt_net import check_network, lease_address, run_network
from kolapy.machine.libvirt_storage import base_volume, ensure_pool, rebase_overlay, upload
from kolapy.machine.libvirt_streams import open_streams
from kolapy.machine.libvirt_xml import (
    DomainInputs,
    bridge_name,
    channel_ports,
    domain_name,
    domain_xml,
    network_xml,
    supports_fwcfg_sysinfo,
)
from kolapy.machine.platform import PlatformProfile, load_platform
from kolapy.machine.privnet import PrivateNic, address_for, mac_for
from kolapy.machine.qemu import POWERDOWN_TIMEOUT, QemuMachine, free_port
from kolapy.machine.spec import MachineSpec
from kolapy.transport.console import InteractiveConsole
from kolapy.transport.ssh import SSHConnection, SSHKeyPair

log = logging.getLogger("kolapy.machine")

_PORT_ATTEMPTS = 5
_QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")


class LibvirtMachine(QemuMachine):
    """A machine booted as a transient libvirt domain on ``uri``."""

    def __init__(
        self,
        spec: MachineSpec,
        *,
        workdir: Path,
        ssh_key: SSHKeyPair,
        uri: str = hosts.DEFAULT_URI,
        accel: Accel = Accel.AUTO,
        profile: PlatformProfile | None = None,
        timeout_scale: float | None = None,
        private_networks: tuple[str, ...] = (),
        options: LibvirtOptions | None = None,
    ) -> None:
        super().__init__(spec, workdir=workdir, ssh_key=ssh_key, accel=accel,
                         profile=profile or load_platform(spec.arch, "libvirt"),
                         timeout_scale=timeout_scale)
        self.uri = uri
        self.options = options or LibvirtOptions()
        self.domain_name = domain_name(hosts.RUN_ID, self.name)
        self.private_networks = private_networks
        self.domain_xml = ""
        self.storage = ""
        """``files`` or ``pool`` (decided when the domain is made on its host)."""
        self.network = ""
        """The libvirt network of the first NIC; empty: user-mode with a host forward."""
        self.volumes: dict[Path, str] = {}
        """Local file -> its volume's path on the host (pool storage)."""
        self._volume_keys: list[str] = []
        self._streams: list[Any] = []
        self._dom: Any = None
        self._qemu_log = ""

    def virsh_console(self) -> str:
        """The command that attaches a terminal to the serial console (pool storage:
        ``--force`` takes it from kolapy's console stream, whose log then stops)."""
        force = " --force" if self.storage == "pool" else ""
        return f"virsh -c {self.uri} console{force} {self.domain_name}"

    # ---- the process, as libvirt runs it --------------------------------------------------

    def _launch(self, pre: Any) -> None:
        uris = self.options.uris
        with hosts.placement_lock():
            if not self.private_networks and len(uris) > 1 and self.uri in uris:
                self.uri = hosts.place(uris, self.spec.memory_mib)
            self.storage = self.options.storage_for(self.uri)
            net = self.options.network_for(self.uri)
            if net == "nat":
                self.network = run_network(self.uri)
            elif net != "user":
                check_network(self.uri, net)
                self.network = net
            if self.storage == "pool":
                self._upload(pre)
            self._create_domain(pre)

    def wait_for_exit(self, timeout: float | None = None) -> float:
        """Not for domains: libvirt restarts the guest on its reboot (``on_reboot``)."""
        raise InfraError(f"{self.name}: waiting for QEMU's exit on a guest reboot (a live "
                         "ISO install's cold start) is not implemented for libvirt")

    def power_cycle(self, spec: MachineSpec | None = None) -> None:
        """Not for domains (the live ISO install's cold start is QEMU-only)."""
        raise InfraError(f"{self.name}: power_cycle is not implemented for libvirt")

    def _upload(self, pre: Any) -> None:
        """Pool storage: every file the domain reads becomes a volume on its host."""
        from kolapy.machine.preflight import require_qemu_img

        p = self._paths
        pool = ensure_pool(self.uri, self.options.pool)
        files = [(p.overlay, "disk0.qcow2")]
        if self.spec.is_iso:
            files.append((p.live_iso, "live.iso"))
        else:
            base = base_volume(self.uri, pool, self.spec.image, pre.image_format)
            rebase_overlay(require_qemu_img(), p.overlay, base, pre.image_format)
        files += [(p.extra_disk(i), f"disk{i + 1}.qcow2")
                  for i in range(len(self.spec.additional_disks))]
        files.append((p.ignition, "config.ign"))
        if p.uefi_vars.exists():
            files.append((p.uefi_vars, "vars.fd"))
        with timed(f"{self.name}: uploading {len(files)} volume(s) to {self.uri}"):
            for local, suffix in files:
                volume = f"{self.domain_name}-{suffix}"
                self._volume_keys.append(f"{pool.name()}/{volume}")
                self.volumes[local] = upload(self.uri, pool, local, volume)

    def _create_domain(self, pre: Any) -> None:
        libvirt = hosts._libvirt()
        conn = hosts.connect(self.uri)
        fwcfg = supports_fwcfg_sysinfo(conn.getLibVersion())
        streams = self.storage == "pool"
        # AUTODESTROY: the domain dies with this process's connection, even when the
        # process is killed (as PR_SET_PDEATHSIG does for QEMU).  Streams: start
        # paused, open the console and ports, then run.
        flags = libvirt.VIR_DOMAIN_START_AUTODESTROY
        if streams:
            flags |= libvirt.VIR_DOMAIN_START_PAUSED
        last_err = ""
        for _ in range(_PORT_ATTEMPTS if not self.network else 1):
            self.ssh_port = 22 if self.network else free_port()
            inputs = DomainInputs(
                self.spec, self.profile, self.accel, self._paths, pre.firmware,
                name=self.domain_name, ssh_port=self.ssh_port, fwcfg_sysinfo=fwcfg,
                private_networks=self.private_networks, network=self.network,
                volumes=self.volumes, streams=streams, placed_on=self.uri)
            self.domain_xml = domain_xml(inputs)
            (self.workdir / "domain.xml").write_text(self.domain_xml)
            for f in (self._paths.console_log, self._paths.journal, self._paths.emergency_journal):
                f.unlink(missing_ok=True)
            log.info("%s: creating domain %s on %s", self.name, self.domain_name, self.uri)
            hosts.register(self.uri, "domain", self.domain_name)
            try:
                dom = conn.createXML(self.domain_xml, flags)
            except libvirt.libvirtError as exc:
                hosts.forget(self.uri, "domain", self.domain_name)
                last_err = str(exc)
                if "hostfwd" in last_err or "Address already in use" in last_err:
                    log.info("%s: port %d was taken, retrying", self.name, self.ssh_port)
                    continue
                break
            hosts.register(self.uri, "domain", self.domain_name, dom)
            self._dom = dom
            self._watch.console_since = 0
            if streams:
                try:
                    self._streams = open_streams(self.uri, dom, self._paths.console_log,
                                                 channel_ports(inputs))
                    dom.resume()
                except libvirt.libvirtError as exc:
                    raise BootError(f"{self.name}: libvirt {self.uri}: cannot open the "
                                    f"console/ports of {self.domain_name}: {exc}") from exc
            return
        raise BootError(f"{self.name}: libvirt {self.uri} could not start domain "
                        f"{self.domain_name}: {last_err.strip() or 'no error text'}\n"
                        f"domain XML: {self.workdir / 'domain.xml'}")

    def _wait_ready(self, end: float, total: float, old_boot_id: str | None = None) -> None:
        """On a libvirt network, first the guest's DHCP lease (its SSH address)."""
        if self.network and self._ssh is None:
            with timed(f"{self.name}: waiting for a DHCP lease on {self.network}"):
                self.ssh_host = self._wait_lease(end)
            self._ssh = SSHConnection(self.ssh_host, 22, self.distro.ssh_user, self.ssh_key,
                                      self.host_key.public_openssh if self.host_key else None)
        super()._wait_ready(end, total, old_boot_id)

    def _wait_lease(self, end: float) -> str:
        while True:
            self.check_alive()
            address = lease_address(self.uri, self._dom, self.network)
            if address:
                log.info("%s: DHCP lease %s on %s", self.name, address, self.network)
                return address
            if time.monotonic() > end:
                raise BootError(f"{self.name}: no DHCP lease on network {self.network}\n"
                                f"console tail:\n{self._console.tail(20)}")
            time.sleep(1.0)

    def _domain_state(self) -> str:
        """``running`` (or paused ...) while the domain lives, else why it is gone."""
        libvirt = hosts._libvirt()
        if self._dom is None:
            return "not started"
        try:
            if self._dom.isActive():
                return "running"
            return "shut off"
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return "gone (the guest powered off, crashed or was destroyed)"
            return f"unknown ({exc})"

    def is_running(self) -> bool:
        return self._domain_state() == "running"

    @property
    def pid(self) -> int | None:
        return None

    def check_alive(self) -> None:
        """Raise at once if the boot is lost: domain ended, emergency journal, fatal console."""
        if self._dom is None:
            raise BootError(f"{self.name}: not started")
        state = self._domain_state()
        if state != "running":
            raise BootError(
                f"{self.name}: domain {self.domain_name} on {self.uri} is {state}: "
                f"{self._stderr().strip()[-2000:] or 'no QEMU log'}\n"
                f"console tail:\n{self._console.tail(20)}"
            )
        self._watch.check()

    def _settle_exit(self, grace: float = 2.0) -> None:
        end = time.monotonic() + grace
        while time.monotonic() < end and self.is_running():
            time.sleep(0.1)

    def stop(self, graceful: bool = True) -> None:
        """ACPI shutdown (bounded) of a ready guest, then destroy; idempotent."""
        if self._ssh is not None:
            self._ssh.close()
        if self._dom is not None and not self._stopped:
            self._stopped = True
            with timed(f"{self.name}: stopping"):
                if graceful and self._was_ready and self.is_running():
                    with contextlib.suppress(Exception):
                        self._dom.shutdown()
                        end = time.monotonic() + POWERDOWN_TIMEOUT
                        while time.monotonic() < end and self.is_running():
                            time.sleep(0.1)
                hosts.destroy(self.uri, "domain", self.domain_name)
                for copy in self._streams:
                    copy.close()
            self._qemu_log = self._read_qemu_log()
        for key in self._volume_keys:  # also when the domain was never made
            hosts.destroy(self.uri, "volume", key)
        if self._tmp_sockdir is not None:
            shutil.rmtree(self._tmp_sockdir, ignore_errors=True)
            self._tmp_sockdir = None

    def interactive_console(self, timeout: float = 30.0) -> InteractiveConsole:
        raise InfraError(f"{self.name}: no interactive console on libvirt yet; "
                         f"use {self.virsh_console()}")

    def _read_qemu_log(self) -> str:
        """libvirt's QEMU log of this domain (local hosts only)."""
        if not hosts.is_local(self.uri):
            return ""
        try:
            return (_QEMU_LOG_DIR / f"{self.domain_name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def _stderr(self) -> str:
        return self._qemu_log or self._read_qemu_log()

    def write_artifacts(self, directory: Path) -> None:
        """The QEMU backend's artifacts plus ``domain.xml``."""
        super().write_artifacts(directory)
        if self.domain_xml:
            (directory / "domain.xml").write_text(self.domain_xml)


class LibvirtSegment:
    """A cluster's private segment on libvirt: a transient isolated network.

    It offers what :class:`~kolapy.machine.privnet.Hub` offers a
    :class:`~kolapy.machine.cluster.Cluster` (``nics``, ``close``); the members
    address themselves statically through the same Ignition fragment.
    """

    def __init__(self, size: int, *, segment: int, uri: str, worker: str = "gw") -> None:
        if size < 1:
            raise ValueError("a private network needs at least one member")
        self.uri = uri
        self.name = f"kolapy-{hosts.RUN_ID}-{worker}-net{segment}"
        self.nics = [PrivateNic(mac_for(segment, i), address_for(i), Path("-"), Path("-"))
                     for i in range(size)]
        libvirt = hosts._libvirt()
        conn = hosts.connect(uri)
        hosts.register(uri, "network", self.name)
        try:
            net = conn.networkCreateXML(network_xml(self.name, bridge_name(self.name)))
        except libvirt.libvirtError as exc:
            hosts.forget(uri, "network", self.name)
            raise InfraError(f"libvirt {uri}: cannot create network {self.name}: {exc}") from exc
        hosts.register(uri, "network", self.name, net)

    def close(self) -> None:
        """Destroy the network (transient: it is gone then); idempotent."""
        hosts.destroy(self.uri, "network", self.name)
