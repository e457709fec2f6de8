"""LibvirtMachine: the QEMU backend's machine, with libvirt owning the QEMU process.

Everything but the process is shared with :class:`~kolapy.machine.qemu.QemuMachine`
(by inheritance, not by copy): the overlay and Ignition config, the console log and
journal streams (files the domain writes), the boot watch, SSH readiness, reboots,
artifacts.  This class only replaces how the process starts, is watched and ends:
a transient domain ``kolapy-<run>-<machine>`` created from
:func:`~kolapy.machine.libvirt_xml.domain_xml` and destroyed on every way out.

The machine's files are local, so its host must be this one (``qemu:///system``
or ``qemu:///session``); SSH reaches the guest through the host forward of its
user-mode NIC on 127.0.0.1.
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
from kolapy.machine.libvirt_xml import (
    DomainInputs,
    bridge_name,
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
from kolapy.transport.ssh import SSHKeyPair

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
    ) -> None:
        super().__init__(spec, workdir=workdir, ssh_key=ssh_key, accel=accel,
                         profile=profile or load_platform(spec.arch, "libvirt"),
                         timeout_scale=timeout_scale)
        self.uri = uri
        self.domain_name = domain_name(hosts.RUN_ID, self.name)
        self.private_networks = private_networks
        self.domain_xml = ""
        self._dom: Any = None
        self._qemu_log = ""

    def virsh_console(self) -> str:
        """The command that attaches a terminal to the serial console."""
        return f"virsh -c {self.uri} console {self.domain_name}"

    # ---- the process, as libvirt runs it --------------------------------------------------

    def _launch(self, pre: Any) -> None:
        libvirt = hosts._libvirt()
        conn = hosts.connect(self.uri)
        fwcfg = supports_fwcfg_sysinfo(conn.getLibVersion())
        last_err = ""
        for _ in range(_PORT_ATTEMPTS):
            self.ssh_port = free_port()
            self.domain_xml = domain_xml(DomainInputs(
                self.spec, self.profile, self.accel, self._paths, pre.firmware,
                name=self.domain_name, ssh_port=self.ssh_port, fwcfg_sysinfo=fwcfg,
                private_networks=self.private_networks))
            (self.workdir / "domain.xml").write_text(self.domain_xml)
            for f in (self._paths.console_log, self._paths.journal, self._paths.emergency_journal):
                f.unlink(missing_ok=True)
            log.info("%s: creating domain %s on %s", self.name, self.domain_name, self.uri)
            hosts.register(self.uri, "domain", self.domain_name)
            try:
                # AUTODESTROY: the domain dies with this process's connection, even
                # when the process is killed (as PR_SET_PDEATHSIG does for QEMU).
                dom = conn.createXML(self.domain_xml, libvirt.VIR_DOMAIN_START_AUTODESTROY)
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
            return
        raise BootError(f"{self.name}: libvirt {self.uri} could not start domain "
                        f"{self.domain_name}: {last_err.strip() or 'no error text'}\n"
                        f"domain XML: {self.workdir / 'domain.xml'}")

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
            self._qemu_log = self._read_qemu_log()
        if self._tmp_sockdir is not None:
            shutil.rmtree(self._tmp_sockdir, ignore_errors=True)
            self._tmp_sockdir = None

    def interactive_console(self, timeout: float = 30.0) -> InteractiveConsole:
        raise InfraError(f"{self.name}: no interactive console on libvirt yet; "
                         f"use {self.virsh_console()}")

    def _read_qemu_log(self) -> str:
        """libvirt's QEMU log of this domain (local hosts only)."""
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
