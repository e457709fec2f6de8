"""Boot once, restore many: save a ready machine and start pristine clones of it.

A *template* is a machine booted to ready and then saved: QMP ``stop``, its RAM
and device state migrated into a file, QEMU quit cleanly (so its qcow2 overlay
is consistent and never written again).  A *clone* (:class:`RestoredMachine`)
gets a new overlay backed by the template's, its own sockets, console log,
journal stream and SSH port, and QEMU started with ``-incoming`` from the saved
state, then resumed.  Measured here (TCG): ~2.5 s from QEMU start to SSH,
against ~50 s for a boot.

What a clone shares with its template (documented in docs/machine.md):
boot_id, machine-id, SSH host keys, the Ignition config that was applied, and
everything the first boot left in memory.  Its clock is set from the host right
after resume (the saved clock is minutes behind).  A reboot of a clone is a real
reboot of its own disk.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kolapy.errors import BootError, InfraError, TimeoutExpired, TransportError
from kolapy.machine.base import timed
from kolapy.machine.disks import create_overlay
from kolapy.machine.preflight import preflight, require_qemu_img
from kolapy.machine.qemu import READY_TIMEOUT, QemuMachine
from kolapy.machine.spec import MachineSpec
from kolapy.retry import retry
from kolapy.transport.qmp import QmpConnection
from kolapy.transport.ssh import SSHConnection, SSHKeyPair

log = logging.getLogger("kolapy.machine")

SAVE_TIMEOUT = 60.0
"""Base seconds the migration to a file may take (x timeout scale; ~3 s measured)."""


@dataclass(frozen=True)
class Template:
    """A saved machine: everything a clone needs, in ``directory`` (kept until the run ends)."""

    spec: MachineSpec
    directory: Path
    overlay: Path
    state: Path
    ignition_file: Path
    ignition: dict[str, Any] | None
    host_key: SSHKeyPair
    uefi_vars: Path | None
    boot_seconds: float
    save_seconds: float

    @property
    def incoming(self) -> str:
        """QEMU's ``-incoming`` URI reading the saved state (QEMU 7.2 has no ``file:``)."""
        return f"exec:cat {self.state}"


def restorable(spec: MachineSpec) -> str | None:
    """Why ``spec`` cannot be restored from a template, or None when it can.

    Clusters are left out (their private network is per cluster), and so are
    additional disks (they would need their own saved copies).
    """
    if spec.private_nics:
        return "a cluster member (private network)"
    if spec.additional_disks:
        return "additional disks"
    if spec.is_iso:
        return "a live ISO machine (its CD-ROM is a private copy)"
    return None


def save_template(machine: QemuMachine, boot_seconds: float) -> Template:
    """Pause ``machine``, save its state beside its overlay, and quit its QEMU.

    The machine must be ready and must not be used afterwards: its overlay is
    now the backing file of every clone.
    """
    paths = machine.paths
    state = machine.workdir / "state.bin"
    start = time.monotonic()
    if machine._ssh is not None:  # a live session in the saved RAM would dangle in clones
        machine._ssh.close()
    with timed(f"{machine.name}: saving as a template"), QmpConnection(paths.qmp_socket) as qmp:
        qmp.connect(5.0)
        qmp.command("stop")
        qmp.command("migrate", uri=f"exec:cat > {state}")
        deadline = time.monotonic() + machine.scaled(SAVE_TIMEOUT)
        while True:
            info = qmp.command("query-migrate")
            status = info.get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled") or time.monotonic() > deadline:
                raise InfraError(
                    f"{machine.name}: saving the machine failed ({status}): "
                    f"{info.get('error-desc', 'timed out')}"
                )
            time.sleep(0.1)
        qmp.quit()
    proc = machine._proc
    if proc is not None:
        try:
            proc.wait(machine.scaled(10))
        except subprocess.TimeoutExpired:
            log.warning("%s: QEMU did not quit after the save; killing it", machine.name)
    machine.stop(graceful=False)
    assert machine.host_key is not None
    return Template(
        spec=machine.spec,
        directory=machine.workdir,
        overlay=paths.overlay,
        state=state,
        ignition_file=paths.ignition,
        ignition=machine.ignition,
        host_key=machine.host_key,
        uefi_vars=paths.uefi_vars if paths.uefi_vars.exists() else None,
        boot_seconds=boot_seconds,
        save_seconds=time.monotonic() - start,
    )


class RestoredMachine(QemuMachine):
    """A machine started from a :class:`Template` instead of booting.

    Use it like a :class:`QemuMachine`: :meth:`start`, :meth:`wait_ready`,
    the whole Machine API, :meth:`stop`.  ``restored_from`` names the template.
    """

    restored = True

    def __init__(self, template: Template, *, workdir: Path, ssh_key: SSHKeyPair,
                 name: str, **kwargs: Any) -> None:
        from dataclasses import replace

        super().__init__(replace(template.spec, name=name), workdir=workdir,
                         ssh_key=ssh_key, **kwargs)
        self.template = template
        self.restored_from = template.directory.name
        self._incoming = template.incoming
        self.restore_seconds = 0.0

    def start(self) -> None:
        """Make the clone's disk and files, and launch QEMU waiting for the saved state."""
        if self._proc is not None:
            raise InfraError(f"{self.name}: already started")
        self._t0 = time.monotonic()
        pre = preflight(self.spec, self.profile)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._setup_sockdir()
        t = self.template
        self.host_key = t.host_key
        self.ignition = t.ignition
        shutil.copyfile(t.ignition_file, self.paths.ignition)
        # Backed by the template's overlay (which is backed by the image): no size change,
        # the template's overlay already has it.
        create_overlay(require_qemu_img(), t.overlay, "qcow2", self.paths.overlay, None)
        if t.uefi_vars is not None:
            shutil.copyfile(t.uefi_vars, self.paths.uefi_vars)
        self._launch(pre)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Load the state, resume, connect SSH, set the clock."""
        total = timeout if timeout is not None else self.scaled(READY_TIMEOUT)
        end = time.monotonic() + total
        with timed(f"{self.name}: restoring from {self.restored_from}"):
            try:
                self._resume(end)
                self._connect(end)
            except TimeoutExpired as exc:
                self.check_alive()
                raise BootError(f"{self.name}: restore not ready within {total:.0f}s: {exc}") \
                    from exc
            self._set_clock()
            self._was_ready = True
        self.restore_seconds = time.monotonic() - self._t0

    def stop(self, graceful: bool = False) -> None:
        """Stop at once by default: a clone's disk is thrown away and its journal was
        streamed live, so a graceful power-down (up to 3 s) buys nothing."""
        super().stop(graceful=graceful)

    def _resume(self, end: float) -> None:
        with QmpConnection(self.paths.qmp_socket) as qmp:
            qmp.connect(5.0)
            while True:
                self.check_alive()
                status = qmp.query_status()
                if status in ("paused", "postmigrate", "prelaunch"):
                    break
                if status == "running":
                    return
                if time.monotonic() > end:
                    raise TimeoutExpired(f"incoming migration still {status!r}")
                time.sleep(0.05)
            qmp.command("cont")

    def _connect(self, end: float) -> None:
        ssh = SSHConnection("127.0.0.1", self.ssh_port, self.distro.ssh_user, self.ssh_key,
                            self.host_key.public_openssh if self.host_key else None)
        self._ssh = ssh

        def attempt(bound: float) -> bool:
            self.check_alive()
            # sshd was up when the template was saved: no boot to wait for.
            ssh.connect(deadline=max(1.0, end - time.monotonic()), attempt_timeout=bound,
                        give_up=self.check_alive, banner_timeout=bound)
            return True

        retry(attempt, what=f"{self.name} SSH", deadline=max(1.0, end - time.monotonic()),
              attempt_timeout=min(30.0, self.scaled(6.0)), interval=0.25,
              retry_on=(TransportError, TimeoutExpired), give_up_on=(BootError,))

    def _set_clock(self) -> None:
        now = f"@{time.time():.3f}"
        r = self.run(["sudo", "-n", "date", "-u", "-s", now], timeout=30)
        if r.failed:
            log.warning("%s: could not set the clock after restore: %s", self.name,
                        r.stderr.strip())
