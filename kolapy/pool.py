"""MachinePool: boot machines on demand, share them by key, stop them after their last user."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kolapy.config import RunConfig
from kolapy.errors import BootError, InfraError
from kolapy.machine import process
from kolapy.machine.cluster import Cluster
from kolapy.machine.privnet import Hub
from kolapy.machine.spec import MachineSpec

log = logging.getLogger("kolapy.pool")

TEMPLATES_DIR = "_templates"
"""Where saved machines' boot logs go in the output dir (no kola test has this name)."""


@dataclass
class _Slot:
    spec: MachineSpec
    artifact_name: str
    machine: Any = None
    error: BaseException | None = None
    kept: bool = False


@dataclass
class MachinePool:
    """Machines of one process (the controller or one xdist worker).

    ``users`` counts, per share key, the tests that still need the machine; the
    machine stops (and writes its artifacts) when that count reaches zero.
    A boot failure is remembered so the key's other tests fail at once
    instead of each waiting for another boot to time out.
    """

    cfg: RunConfig
    output_dir: Path
    worker: str = "gw"
    users: Counter[str] = field(default_factory=Counter)
    restore_digests: set[str] = field(default_factory=set)
    """Spec digests worth a template: several machines of this run share the spec."""
    _slots: dict[str, _Slot] = field(default_factory=dict)
    _workdir: Path | None = None
    _ssh_key: Any = None
    _accel: Any = None
    _serial: int = 0
    _segments: int = 0
    _templates: dict[str, Any] = field(default_factory=dict)

    # -- lazily created run resources -------------------------------------
    def _resources(self) -> tuple[Path, Any, Any]:
        if self._workdir is None:
            from kolapy.machine.accel import resolve_accel
            from kolapy.transport.ssh import SSHKeyPair

            # Short path: QEMU's unix sockets must fit in 108 bytes.
            self._workdir = Path(tempfile.mkdtemp(prefix=f"kolapy-{self.worker}-"))
            self._ssh_key = SSHKeyPair.generate(self._workdir / "ssh")
            self._accel = resolve_accel(self.cfg.accel, self.cfg.arch)
        return self._workdir, self._ssh_key, self._accel

    def acquire(self, key: str, spec: MachineSpec, artifact_name: str, size: int = 1) -> Any:
        """The machine for ``key`` (a :class:`Cluster` when ``size`` > 1), booted on first use."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(spec, artifact_name)
        if slot.error is not None:
            raise BootError(f"machine for {artifact_name} failed to boot earlier: {slot.error}")
        if slot.machine is None:
            try:
                if size > 1:
                    slot.machine = self.boot_cluster(spec, size, artifact_name)
                else:
                    slot.machine = self.boot_or_restore(spec, artifact_name)
            except InfraError as exc:
                slot.error = exc
                raise
        return slot.machine

    def _next_name(self) -> str:
        self._serial += 1
        return f"{self.worker}-{self._serial}"

    def _new_machine(self, spec: MachineSpec, artifact_name: str, name: str = "", *,
                     uri: str = "", networks: tuple[str, ...] = ()) -> Any:
        if self.cfg.platform == "libvirt":
            from kolapy.machine import libvirt_hosts
            from kolapy.machine.libvirt import LibvirtMachine

            host = uri or libvirt_hosts.place(libvirt_hosts.uris_of(self.cfg), spec.memory_mib)
            return self._place(artifact_name, lambda n, d, key, accel: LibvirtMachine(
                _with_name(spec, n), workdir=d, ssh_key=key, accel=accel, uri=host,
                private_networks=networks, profile=self._profile(spec),
                options=libvirt_hosts.options_of(self.cfg)), name)
        from kolapy.machine.qemu import QemuMachine

        return self._place(artifact_name, lambda n, d, key, accel: QemuMachine(
            _with_name(spec, n), workdir=d, ssh_key=key, accel=accel,
            profile=self._profile(spec)), name)

    def _profile(self, spec: MachineSpec) -> Any:
        """The run's platform profile when it is for ``spec``'s arch, else None
        (the machine loads its arch's shipped one)."""
        profile = self.cfg.profile()
        return profile if profile.arch == spec.arch else None

    def _place(self, artifact_name: str, make: Callable[..., Any], name: str = "") -> Any:
        """``make(name, workdir, ssh_key, accel)``, with its artifact dir and memory watch."""
        from kolapy.report.outdir import safe_component

        workdir, key, accel = self._resources()
        name = name or self._next_name()
        mdir = workdir / name
        mdir.mkdir()
        machine = make(name, mdir, key, accel)
        machine.artifact_dir = self.output_dir / safe_component(artifact_name) / name
        self._watch_memory(machine, artifact_name)
        return machine

    def _bring_up(self, machine: Any, artifact_name: str, *,
                  on_start: Callable[[Any], None] | None = None,
                  detail: dict[str, Any] | None = None) -> None:
        """Start ``machine`` and wait until it is ready, telling the live view.

        A machine that fails is stopped (its artifacts kept) and the error re-raised.
        """
        try:
            self._event("booting", machine, artifact_name, detail=detail)
            machine.start()
            if on_start is not None:
                on_start(machine)
            machine.wait_ready()
        except BaseException as exc:
            self._event("failed", machine, artifact_name, exc, detail=detail)
            self.stop(machine)
            exc.kolapy_machine = machine  # type: ignore[attr-defined]  # its logs for the report
            raise
        self._event("ready", machine, artifact_name, detail=detail)

    def _watch_memory(self, machine: Any, artifact_name: str) -> None:
        """Tell the live view when a machine waits for host memory."""
        def waiting(wait: bool, need_mib: int, free_mib: int) -> None:
            if wait:
                self._event("waiting", machine, artifact_name,
                            detail={"need_mib": need_mib, "free_mib": free_mib})
            else:
                self._event("booting", machine, artifact_name)

        machine.on_memory_wait = waiting

    def boot(self, spec: MachineSpec, artifact_name: str,
             on_start: Callable[[Any], None] | None = None) -> Any:
        """Boot a machine that the caller owns (stop it with :meth:`stop`).

        ``on_start(machine)`` runs once QEMU is up and before the guest is waited
        for: the moment to attach host services a first boot needs (a remote config).
        """
        machine = self._new_machine(spec, artifact_name)
        self._bring_up(machine, artifact_name, on_start=on_start)
        return machine

    def boot_or_restore(self, spec: MachineSpec, artifact_name: str) -> Any:
        """A clone of the spec's template when restore applies, else a fresh boot."""
        from kolapy.machine.restore import restorable
        from kolapy.scheduling import template_digest

        digest = template_digest(spec)
        if (not self.cfg.restore or self.cfg.platform != "qemu"
                or digest not in self.restore_digests or restorable(spec)):
            return self.boot(spec, artifact_name)
        return self.restore(self.template(spec, digest), artifact_name)

    def template(self, spec: MachineSpec, digest: str) -> Any:
        """The saved machine of ``spec`` (booted and saved on first need, once per worker).

        Its boot logs go to ``<output-dir>/_templates/<name>/``.  A template that
        failed to boot fails every later request at once.
        """
        from kolapy.machine.restore import save_template

        got = self._templates.get(digest)
        if isinstance(got, BaseException):
            raise BootError(f"the saved machine for this spec failed earlier: {got}")
        if got is not None:
            return got
        machine = self._new_machine(spec, TEMPLATES_DIR, name=f"{self.worker}-t{digest[:6]}")
        start = time.monotonic()
        try:
            self._bring_up(machine, TEMPLATES_DIR)
        except BaseException as exc:
            self._templates[digest] = exc
            raise
        try:
            got = save_template(machine, time.monotonic() - start)
        except BaseException as exc:
            self._templates[digest] = exc
            self._event("failed", machine, TEMPLATES_DIR, exc)
            self.stop(machine)
            raise
        self._event("stopped", machine, TEMPLATES_DIR, detail={"saved": True})
        self._write_artifacts(machine)
        self._templates[digest] = got
        return got

    def restore(self, template: Any, artifact_name: str) -> Any:
        """A pristine clone of ``template`` for one user (stop it with :meth:`stop`)."""
        from kolapy.machine.restore import RestoredMachine

        machine = self._place(artifact_name, lambda n, d, key, accel: RestoredMachine(
            template, workdir=d, ssh_key=key, name=n, accel=accel))
        self._bring_up(machine, artifact_name, detail={"restored_from": machine.restored_from})
        return machine

    def boot_cluster(self, spec: MachineSpec, size: int, artifact_name: str) -> Cluster:
        """Boot ``size`` machines on one private network, all at once (stop with :meth:`stop`).

        Member *i* boots the test's config merged with ``spec.member_ignition[i]`` (when
        the test gives each member its own) and its private NIC's fragment; each gets a
        spec of its own, so members never share a saved template (clusters are never
        restored anyway: :func:`kolapy.machine.restore.restorable`).  Each machine's
        ``cluster_member`` (:class:`ClusterMember`) tells the reports which config it got.
        """
        from kolapy.machine.cluster import ClusterMember, config_digest
        from kolapy.machine.ignition_config import to_ignition
        from kolapy.machine.privnet import privnet_fragment

        if spec.member_ignition and len(spec.member_ignition) != size:
            raise InfraError(f"{artifact_name}: {len(spec.member_ignition)} member configs "
                             f"for a cluster of {size}")
        workdir, _, _ = self._resources()
        self._segments += 1
        uri, networks = "", ()
        if self.cfg.platform == "libvirt":  # one host, one libvirt network
            from kolapy.machine import libvirt_hosts
            from kolapy.machine.libvirt import LibvirtSegment

            uri = libvirt_hosts.place(libvirt_hosts.uris_of(self.cfg), size * spec.memory_mib)
            hub: Any = LibvirtSegment(size, segment=self._segments, uri=uri,
                                      worker=self.worker)
            networks = (hub.name,)
        else:
            hub = Hub(size, segment=self._segments, sockdir=workdir)
        cluster = Cluster([], hub)
        ready: set[str] = set()
        try:
            for index, nic in enumerate(hub.nics):
                own = to_ignition(spec.ignition)
                if spec.member_ignition:
                    own = own.merge(spec.member_ignition[index])
                member = replace(spec, ignition=own.merge(privnet_fragment(nic)),
                                 private_nics=(nic,), member_ignition=())
                on_host = {"uri": uri, "networks": networks} if uri else {}
                machine = self._new_machine(member, artifact_name, **on_host)
                cluster.machines.append(machine)
                machine.cluster_member = ClusterMember(
                    index, nic.address, config_digest(own),
                    self._artifact(machine, "ignition.json"))
                self._event("booting", machine, artifact_name)
                machine.start()  # launch all first: they boot in parallel
            for machine in cluster.machines:
                machine.wait_ready()
                ready.add(machine.name)
                self._event("ready", machine, artifact_name)
        except BaseException as exc:
            for machine in cluster.machines:
                if machine.name not in ready:
                    self._event("failed", machine, artifact_name, exc)
            self.stop(cluster)
            raise
        return cluster

    def stop(self, machine: Any) -> None:
        """Stop a machine (or every machine of a cluster) and keep its artifacts."""
        if isinstance(machine, Cluster):
            try:
                for member in machine.machines:
                    self.stop(member)
            finally:
                if machine.hub is not None:
                    machine.hub.close()
            return
        self._event("stopping", machine)  # the timeline's stop segment starts here
        try:
            if process.interrupted():  # no power-down wait: every machine must stop in time
                machine.stop(graceful=False)
            else:
                machine.stop()
        finally:
            self._event("stopped", machine)
            self._write_artifacts(machine)

    def _artifact(self, machine: Any, filename: str) -> str:
        """Where ``machine``'s artifact ``filename`` goes, relative to the output dir."""
        dest = getattr(machine, "artifact_dir", None)
        try:
            return str((Path(dest) / filename).relative_to(self.output_dir)) if dest else ""
        except ValueError:
            return str(Path(dest) / filename)

    def _write_artifacts(self, machine: Any) -> None:
        dest = getattr(machine, "artifact_dir", None)
        if dest is not None:
            try:
                machine.write_artifacts(dest)
            except Exception as exc:  # artifacts are best effort, never mask the result
                log.warning("could not write artifacts of %s: %s", machine.name, exc)

    def _event(self, kind: str, machine: Any, test: str = "", error: Any = None,
               detail: dict[str, Any] | None = None) -> None:
        # Workers' machine events reach the controller's live view through this log.
        from kolapy.report.events import emit

        emit(self.output_dir, kind, machine.name, test=test, worker=self.worker, error=error,
             detail=detail)

    def keep(self, key: str) -> Any:
        """Keep the machine of ``key`` running after its tests (``--keep-failed``)."""
        slot = self._slots.get(key)
        if slot is not None and slot.machine is not None:
            slot.kept = True
            return slot.machine
        return None

    def release(self, key: str) -> None:
        """One user of ``key`` is done; stop its machine when it was the last."""
        self.users[key] -= 1
        slot = self._slots.get(key)
        if self.users[key] <= 0 and slot is not None and slot.machine is not None and not slot.kept:
            machine, slot.machine = slot.machine, None
            self.stop(machine)

    def kept_machines(self) -> list[Any]:
        """Machines kept by :meth:`keep` (cluster members one by one)."""
        kept = [s.machine for s in self._slots.values() if s.kept and s.machine is not None]
        return [m for k in kept for m in (k.machines if isinstance(k, Cluster) else [k])]

    def close(self) -> None:
        """Stop every machine (kept ones too) and remove the scratch dir."""
        for slot in self._slots.values():
            if slot.machine is not None:
                machine, slot.machine = slot.machine, None
                try:
                    self.stop(machine)
                except Exception as exc:
                    log.warning("stopping %s failed: %s", getattr(machine, "name", "?"), exc)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def _with_name(spec: MachineSpec, name: str) -> MachineSpec:
    return replace(spec, name=name)

