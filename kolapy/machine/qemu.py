"""QemuMachine: one VM under QEMU, from qcow2 overlay to a ready SSH session to teardown."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from kolapy.distro import get_distro
from kolapy.enums import Accel, Arch
from kolapy.errors import BootError, InfraError, TimeoutExpired, TransportError
from kolapy.ignition.fwcfg import check_fw_cfg_size
from kolapy.machine import process
from kolapy.machine.accel import resolve_accel, timeout_scale
from kolapy.machine.base import LogMark, Machine, timed
from kolapy.machine.bootwatch import FATAL_CONSOLE, BootWatch, SshHint  # noqa: F401
from kolapy.machine.disks import create_blank, create_overlay
from kolapy.machine.ignition_config import machine_config
from kolapy.machine.platform import IgnitionInjection, PlatformProfile, load_platform
from kolapy.machine.preflight import preflight, require_qemu_img

# Re-exported for the plugin: SIGTERM/SIGHUP -> kill every QEMU, then unwind like Ctrl-C.
from kolapy.machine.process import install_signal_handlers, kill_all  # noqa: F401
from kolapy.machine.qemu_command import MachinePaths, QemuCommand
from kolapy.machine.spec import MachineSpec
from kolapy.result import CommandResult
from kolapy.retry import retry
from kolapy.transport.console import ConsoleLog, InteractiveConsole
from kolapy.transport.journal import JournalLog, render_journal, split_by_boot_id
from kolapy.transport.qmp import QmpConnection
from kolapy.transport.ssh import BANNER_TIMEOUT, SSHConnection, SSHKeyPair

log = logging.getLogger("kolapy.machine")

READY_TIMEOUT = 120.0
"""Base seconds from launch to ready (x timeout_scale: 600 s under TCG; a loaded
2-core host running several TCG guests really needs minutes)."""
COMMAND_TIMEOUT = 60.0
"""Base seconds a command may run by default."""
ISO_DISK_GIB = 12.0
"""ISO machines' blank disk0 (kola's testiso target disk is 12 GiB)."""
POWERDOWN_TIMEOUT = 3.0
"""Seconds a graceful ACPI shutdown may take before QEMU is terminated (not scaled: the
journal is streamed live and the overlay is thrown away, so waiting longer buys nothing)."""

_PORT_TAKEN = re.compile(r"host forwarding rule|Address already in use|Could not set up host")
_PORT_ATTEMPTS = 5


class QemuMachine(Machine):
    """A machine booted by QEMU from ``spec.image`` through a qcow2 overlay.

    Use as a context manager (``with QemuMachine(...) as m:`` starts and waits
    until ready; leaving stops it), or call :meth:`start`, :meth:`wait_ready`,
    :meth:`stop` yourself.  ``accel`` may be ``auto``.
    """

    restored = False
    """True for a machine restored from a saved one (:mod:`kolapy.machine.restore`)."""
    ssh_host = "127.0.0.1"
    """Where SSH reaches the guest (with :attr:`ssh_port`): QEMU's host forward here; a
    libvirt machine on a libvirt network has its DHCP lease and port 22."""
    _incoming: str | None = None
    _reservation: Any = None
    _pre: Any = None  # the preflight result of the first launch (a power cycle reuses it)
    on_memory_wait: Any = None
    """``fn(waiting, need_mib, free_mib)``: called with True when the start has to wait
    for host memory, and with False once it got it (:mod:`kolapy.machine.memory`)."""

    def __init__(
        self,
        spec: MachineSpec,
        *,
        workdir: Path,
        ssh_key: SSHKeyPair,
        accel: Accel = Accel.AUTO,
        profile: PlatformProfile | None = None,
        timeout_scale: float | None = None,
    ) -> None:
        self.spec = spec
        self.workdir = Path(workdir).absolute()
        self.ssh_key = ssh_key
        self.profile = profile or load_platform(spec.arch)
        self.accel = resolve_accel(accel, spec.arch)
        self.timeout_scale = timeout_scale if timeout_scale is not None else _scale(self.accel)
        self.default_timeout = self.scaled(COMMAND_TIMEOUT)
        self.distro = get_distro(spec.distro)
        self.ssh_port = 0
        self.ignition: dict[str, Any] | None = None
        self.host_key: SSHKeyPair | None = None
        self._paths = MachinePaths.for_workdir(self.workdir)
        self._tmp_sockdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ssh: SSHConnection | None = None
        self._console = ConsoleLog(self._paths.console_log)
        self._journal = JournalLog(self._paths.journal)
        self._emergency = JournalLog(self._paths.emergency_journal)
        self._watch = BootWatch(self.name, self._console, self._emergency,
                                settle=self.scaled(2.0))
        self._journal_since = 0  # where this boot's part of the journal stream begins
        self._boot_starts: list[LogMark] = [LogMark(0, 0)]  # each boot's first offsets
        self._argv: list[str] = []
        self._stopped = False
        self._was_ready = False

    # ---- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name or self.workdir.name

    @property
    def arch(self) -> Arch:
        return self.spec.arch

    @property
    def console_log_path(self) -> Path:
        return self._paths.console_log

    @property
    def paths(self) -> MachinePaths:
        return self._paths

    @property
    def argv(self) -> list[str]:
        """The QEMU command line used (empty before :meth:`start`)."""
        return list(self._argv)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        """True while the QEMU process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def scaled(self, seconds: float) -> float:
        return seconds * self.timeout_scale

    def ssh_command(self) -> str:
        return (
            f"ssh -i {self.ssh_key.private_path} -p {self.ssh_port} "
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"{self.distro.ssh_user}@{self.ssh_host}"
        )

    # ---- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> QemuMachine:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop(graceful=False)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Check inputs, write overlay + config, and launch QEMU (does not wait for SSH)."""
        if self._proc is not None:
            raise InfraError(f"{self.name}: already started")
        if self.spec.is_iso:  # a non-ISO or a non-live ISO: one line, exit 2, no boot
            from kolapy.iso.media import check_live_iso

            check_live_iso(self.spec.image)
        pre = preflight(self.spec, self.profile)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._setup_sockdir()
        if self.host_key is None:  # a caller may set it first (an installed system's config)
            self.host_key = SSHKeyPair.generate(self.workdir / "hostkey", "ssh_host_ed25519_key",
                                                comment=f"kolapy-host-{self.name}")
        config = machine_config(
            self.spec.ignition, distro=self.spec.distro, ssh_key=self.ssh_key,
            host_key=self.host_key, source=f"{self.name} Ignition config",
        )
        if self.profile.ignition_injection == IgnitionInjection.FW_CFG:
            check_fw_cfg_size(config, f"{self.name}'s Ignition config")
        config.write(self._paths.ignition)
        self.ignition = config.to_dict()
        if self.spec.is_iso:
            self._create_iso_disks(config)
        else:
            self._create_disks(pre.image_format)
        if pre.firmware.vars_template is not None:
            shutil.copyfile(pre.firmware.vars_template, self._paths.uefi_vars)
        self._launch(pre)

    def _setup_sockdir(self) -> None:
        # A unix socket path must fit in 108 bytes; fall back to a short private dir.
        if len(str(self.workdir / "console.sock")) > 100:
            self._tmp_sockdir = Path(tempfile.mkdtemp(prefix="kolapy-s-"))
            self._paths = MachinePaths.for_workdir(self.workdir, self._tmp_sockdir)

    def _create_disks(self, image_format: str) -> None:
        qemu_img = require_qemu_img()
        create_overlay(qemu_img, self.spec.image, image_format, self._paths.overlay,
                       self.spec.disk_size_gib)
        if self.spec.append_kargs or self.spec.append_firstboot_kargs:
            # GRUB boots the kernel from the disk, so QEMU's -append cannot reach it:
            # edit the overlay's boot partition before the first boot, as kola does.
            from kolapy.machine.bootedit import append_kernel_args

            append_kernel_args(self._paths.overlay, self.spec.append_kargs,
                               self.spec.append_firstboot_kargs)
        for i, disk in enumerate(self.spec.additional_disks):
            create_blank(qemu_img, self._paths.extra_disk(i), disk.size_gib)

    def _create_iso_disks(self, config: Any) -> None:
        """A live ISO machine: a private copy of the ISO (config embedded, serial
        console karg appended) and a blank disk0 to install to."""
        from kolapy.iso.media import prepare_live_iso

        qemu_img = require_qemu_img()
        create_blank(qemu_img, self._paths.overlay, self.spec.disk_size_gib or ISO_DISK_GIB)
        console = f"console={self.profile.console},115200"
        prepare_live_iso(self.spec.image, self._paths.live_iso,
                         config if self.spec.embed_config else None,
                         append_kargs=(console, *self.spec.append_kargs),
                         as_disk=self.spec.boot_media == "iso-as-disk")
        for i, disk in enumerate(self.spec.additional_disks):
            create_blank(qemu_img, self._paths.extra_disk(i), disk.size_gib)

    def wait_for_port(self, port: str, text: str, timeout: float | None = None) -> float:
        """Wait until ``text`` arrived on the virtio port ``port`` (ISO machines:
        ``testisocompletion``, ``nestos.liveiso-success``); return the seconds waited.
        ``timeout`` is a base value (scaled).  Fails fast if the boot is lost."""
        path = self._paths.port_file(port)
        total = self.scaled(timeout or READY_TIMEOUT)
        start = time.monotonic()
        with timed(f"{self.name}: waiting for {text!r} on port {port}"):
            while True:
                if path.exists() and text in path.read_text(errors="replace"):
                    return time.monotonic() - start
                self.check_alive()
                if time.monotonic() - start > total:
                    raise TimeoutExpired(
                        f"{self.name}: no {text!r} on port {port} within {total:.0f}s\n"
                        f"console tail:\n{self._console.tail(20)}")
                time.sleep(0.5)

    def wait_for_exit(self, timeout: float | None = None) -> float:
        """Wait until QEMU exits by itself and return the seconds waited: a ``no_reboot``
        machine's guest rebooted (or powered off).  ``timeout`` is a base value (scaled).

        Raises :class:`BootError` if QEMU exits with an error (a crash, not the guest's
        reboot), :class:`EmergencyError` on a lost boot, :class:`TimeoutExpired` if it
        still runs after the timeout (it is left running: :meth:`stop` ends it)."""
        proc = self._proc
        if proc is None:
            raise BootError(f"{self.name}: not started")
        total = self.scaled(timeout or READY_TIMEOUT)
        start = time.monotonic()
        with timed(f"{self.name}: waiting for QEMU to exit (the guest's reboot)"):
            while (rc := proc.poll()) is None:
                self._watch.check()
                if time.monotonic() - start > total:
                    raise TimeoutExpired(
                        f"{self.name}: QEMU still running {total:.0f}s later (no reboot)\n"
                        f"console tail:\n{self._console.tail(20)}")
                time.sleep(0.5)
        if rc != 0:
            self.check_alive()  # raises BootError with QEMU's stderr and the console tail
        return time.monotonic() - start

    def power_cycle(self, spec: MachineSpec | None = None) -> None:
        """Start QEMU again on the same disks, a cold start as after a power cycle.

        The running QEMU, if any, is ended first (hard: no power-down).  ``spec`` replaces
        the machine's spec (e.g. ``boot_media="iso-ejected"``: the ISO taken out).  The
        overlay, UEFI variables, console, journal and virtio port files are kept and
        appended to; the next boot's logs are sliced as after a reboot.  SSH gets a new
        host port: call :meth:`wait_ready` (or wait for a port) afterwards.
        """
        if self._proc is None:
            raise InfraError(f"{self.name}: not started")
        if self._stopped:
            raise InfraError(f"{self.name}: stopped")
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None
        rc = process.terminate(self._proc)
        self._proc = None
        for sock in (self._paths.qmp_socket, self._paths.console_socket):
            sock.unlink(missing_ok=True)  # the last QEMU's: QMP must not be waited for there
        log.info("%s: power cycle (QEMU exited with %s)", self.name, rc)
        if spec is not None:
            self.spec = spec
        self._was_ready = False
        mark = self.log_mark()
        self._journal_since = mark.journal_offset
        self._boot_starts.append(mark)
        self._launch(self._pre, since=mark)  # the inputs were checked by the first start

    def _launch(self, pre: Any, since: LogMark | None = None) -> None:
        """Start QEMU.  ``since``: a power cycle's, whose log files are kept (the boot
        begins at these offsets); otherwise the logs start empty."""
        from kolapy.machine.memory import admit

        self._pre = pre
        if self._reservation is None:  # wait until the host has the memory for this guest
            notify = self.on_memory_wait
            self._reservation = admit(
                self.name, self.spec.memory_mib,
                on_wait=(lambda need, free: notify(True, need, free)) if notify else None,
            )
            if notify and self._reservation.waited_s > 0:
                notify(False, self._reservation.reserve_mib, 0)
        last_err = ""
        for _ in range(_PORT_ATTEMPTS):
            self.ssh_port = free_port()
            cmd = QemuCommand(self.spec, self.profile, self.accel, self._paths, self.ssh_port,
                              pre.firmware, incoming=self._incoming)
            self._argv = cmd.argv()
            for f in (self._paths.console_log, self._paths.journal, self._paths.emergency_journal):
                if since is None:
                    f.unlink(missing_ok=True)
            log.info("%s: launching %s", self.name, " ".join(self._argv))
            try:
                if since is None:
                    self._proc = process.launch(self._argv, stderr=self._paths.qemu_stderr,
                                                cwd=self.workdir)
                else:  # keep the last QEMU's stderr too
                    with self._paths.qemu_stderr.open("ab") as err:
                        self._proc = process.launch(self._argv, stderr=err, cwd=self.workdir)
            except OSError as exc:
                raise BootError(f"{self.name}: cannot run {self._argv[0]}: {exc}") from exc
            if self._wait_qmp():
                self._watch.console_since = since.console_offset if since else 0
                self._reservation.set_pid(self._proc.pid)
                return
            last_err = self._stderr()
            process.terminate(self._proc)
            self._proc = None
            if not _PORT_TAKEN.search(last_err):
                break
            log.info("%s: port %d was taken, retrying", self.name, self.ssh_port)
        self._reservation.release()  # nothing runs: give the memory back at once
        raise BootError(
            f"{self.name}: QEMU failed to start: {last_err.strip() or 'no output'}\n"
            f"command: {' '.join(self._argv)}"
        )

    def _wait_qmp(self) -> bool:
        """True once QEMU answers on QMP (it is initialised), False if it exited."""
        deadline = time.monotonic() + self.scaled(10)
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if self._paths.qmp_socket.exists():
                try:
                    with QmpConnection(self._paths.qmp_socket) as qmp:
                        qmp.connect(2.0)
                        qmp.query_status()
                    return True
                except TransportError:
                    pass
            time.sleep(0.05)
        return self._proc.poll() is None

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until SSH answers and ``systemctl is-system-running`` settles.

        Fails fast with :class:`BootError` if QEMU exits and :class:`EmergencyError`
        if the initramfs reports an emergency or the console shows a fatal line.
        """
        total = timeout if timeout is not None else self.scaled(READY_TIMEOUT)
        with timed(f"{self.name}: waiting until ready"):
            self._wait_ready(time.monotonic() + total, total)

    def _wait_ready(self, end: float, total: float, old_boot_id: str | None = None) -> None:
        def remaining() -> float:
            return end - time.monotonic()

        ssh = self._ssh or SSHConnection(self.ssh_host, self.ssh_port, self.distro.ssh_user,
                                         self.ssh_key, self.host_key.public_openssh
                                         if self.host_key else None)
        self._ssh = ssh

        hint = SshHint(self._journal, self._console, journal_since=self._journal_since,
                       console_since=self._watch.console_since,
                       blind_after=self.scaled(8.0), blind_every=self.scaled(4.0))

        def attempt(bound: float) -> str | None:
            self.check_alive()
            if not hint.ready():
                return None
            # A blind try (no sign of sshd yet) gets one short banner wait, then the hint
            # is polled again.  Once sshd is known up, connect retries until the deadline
            # and waits for the banner as long as the attempt may last: a loaded guest
            # can take >8 s to send it, and each abandoned connection forks another sshd.
            if hint.seen:
                window, banner = remaining(), bound
            else:
                window, banner = min(remaining(), BANNER_TIMEOUT + 1.0), BANNER_TIMEOUT
            ssh.connect(deadline=max(1.0, window), attempt_timeout=bound,
                        give_up=self.check_alive, banner_timeout=banner)
            boot_id = ssh.execute("cat /proc/sys/kernel/random/boot_id", bound).stdout.strip()
            if old_boot_id is not None and boot_id == old_boot_id:
                ssh.close()  # still the old boot, going down
                return None
            return boot_id

        try:
            retry(attempt, what=f"{self.name} SSH", deadline=max(1.0, remaining()),
                  attempt_timeout=min(30.0, self.scaled(6.0)), interval=0.25,
                  retry_on=(TransportError, TimeoutExpired),
                  give_up_on=(BootError,))
            self._wait_system_running(remaining)
            self._was_ready = True
        except TimeoutExpired as exc:
            self.check_alive()
            raise BootError(
                f"{self.name}: not ready within {total:.0f}s: {exc}\n"
                f"console tail:\n{self._console.tail(20)}"
            ) from exc

    def _wait_system_running(self, remaining: Any) -> None:
        assert self._ssh is not None
        while True:
            self.check_alive()
            bound = max(1.0, remaining())
            r = self._ssh.execute("systemctl is-system-running --wait", bound)
            state = r.stdout.strip()
            if state == "running":
                return
            if state == "degraded":
                failed = self._ssh.execute("systemctl --failed --no-pager --plain", 30).stdout
                raise InfraError(f"{self.name}: system is degraded; failed units:\n{failed}")
            if remaining() <= 0:
                raise TimeoutExpired(f"system state stuck at {state!r}")
            time.sleep(1)

    def check_alive(self) -> None:
        """Raise at once if the boot is lost: QEMU exited, emergency journal, fatal console."""
        if self._proc is None:
            raise BootError(f"{self.name}: not started")
        if self._proc.poll() is not None:
            why = ""
            if self.spec.no_reboot and self._proc.returncode == 0:
                why = " (-no-reboot: the guest rebooted or powered off)"
            raise BootError(
                f"{self.name}: QEMU exited with code {self._proc.returncode}{why}: "
                f"{self._stderr().strip() or 'no output'}\n"
                f"console tail:\n{self._console.tail(20)}"
            )
        self._watch.check()

    def stop(self, graceful: bool = True) -> None:
        """Power down (ACPI, bounded), then SIGTERM, then SIGKILL; idempotent; always reaps."""
        if self._ssh is not None:
            self._ssh.close()
        proc = self._proc
        if proc is not None and not self._stopped:
            self._stopped = True
            with timed(f"{self.name}: stopping"):
                # Only an OS that came up listens to the power button; else skip the wait.
                if graceful and self._was_ready and proc.poll() is None:
                    self._powerdown(proc)
                rc = process.terminate(proc)
            log.debug("%s: QEMU exited with %s", self.name, rc)
        if self._reservation is not None:
            self._reservation.release()
        if self._tmp_sockdir is not None:
            shutil.rmtree(self._tmp_sockdir, ignore_errors=True)
            self._tmp_sockdir = None

    def _powerdown(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            with QmpConnection(self._paths.qmp_socket) as qmp:
                qmp.connect(2.0)
                qmp.powerdown()
            proc.wait(POWERDOWN_TIMEOUT)
        except (TransportError, subprocess.TimeoutExpired) as exc:
            log.debug("%s: graceful powerdown incomplete: %s", self.name, exc)

    # ---- the primitive and the plumbing ---------------------------------------------------

    def _execute(self, cmd: str, timeout: float, stdin: bytes | None = None,
                 stdout: BinaryIO | None = None) -> CommandResult:
        if self._ssh is None:
            raise TransportError(f"{self.name}: not connected (call wait_ready first)")
        if not self._ssh.connected:  # an earlier command lost the connection: one new try
            self.check_alive()
            log.info("%s: SSH connection lost, reconnecting", self.name)
            self._ssh.connect(deadline=max(1.0, min(timeout, self.scaled(30))),
                              attempt_timeout=min(30.0, self.scaled(6)),
                              give_up=self.check_alive)
        try:
            return self._ssh.execute(cmd, timeout, stdin, stdout=stdout,
                                     spool=self.output_spool())
        except TransportError:
            self._settle_exit()
            self.check_alive()  # a dead QEMU explains a dead SSH better
            raise

    def _execute_to(self, cmd: str, timeout: float, stdout: BinaryIO) -> CommandResult:
        return self._execute(cmd, timeout, stdout=stdout)

    def _settle_exit(self, grace: float = 2.0) -> None:
        """Give a dying QEMU a moment to become reapable: the kernel closes its sockets
        (so SSH sees a reset) just before the process can be waited for."""
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(grace)

    def _reboot_and_reconnect(self, old_boot_id: str, trigger: bool = True) -> None:
        assert self._ssh is not None
        self._watch.console_since = self._console.mark()
        self._journal_since = self._journal.mark()
        self._boot_starts.append(LogMark(self._watch.console_since, self._journal_since))
        # The connection may drop before the reply.
        if trigger:
            with contextlib.suppress(TransportError, TimeoutExpired):
                self._ssh.execute("sudo systemctl reboot", self.scaled(5))
        self._ssh.close()
        total = self.scaled(READY_TIMEOUT)
        self._wait_ready(time.monotonic() + total, total, old_boot_id=old_boot_id)

    def wait_for_reboot(self, old_boot_id: str) -> None:
        """Follow a reboot the guest makes by itself: ready again with a new boot id."""
        with timed(f"{self.name}: waiting for the guest's reboot"):
            self._reboot_and_reconnect(old_boot_id, trigger=False)
        if self.boot_id == old_boot_id:
            raise InfraError(f"{self.name}: reboot did not happen (boot_id still {old_boot_id})")

    def copy_to(self, local: Path | str, remote: str) -> None:
        assert self._ssh is not None, "not connected"
        with timed(f"{self.name}: copy {local} -> {remote}"):
            self._ssh.put(Path(local), remote, timeout=self.scaled(COMMAND_TIMEOUT))

    def copy_from(self, remote: str, local: Path | str) -> None:
        assert self._ssh is not None, "not connected"
        with timed(f"{self.name}: copy {remote} -> {local}"):
            self._ssh.get(remote, Path(local), timeout=self.scaled(COMMAND_TIMEOUT))

    def wait_for_console(
        self, regex: str, timeout: float | None = None, since: int | None = None
    ) -> re.Match[str]:
        """Wait for ``regex`` on the serial console, searching from the start of this boot
        (or byte offset ``since``); ``timeout`` is a base value (scaled)."""
        __tracebackhide__ = True
        start = self._watch.console_since if since is None else since
        with timed(f"{self.name}: waiting for console {regex!r}"):
            return self._console.wait_for(regex, self.scaled(timeout or 60.0), since=start)

    def interactive_console(self, timeout: float = 30.0) -> InteractiveConsole:
        """A pexpect session on the serial console (close it when done)."""
        return InteractiveConsole(self._paths.console_socket, timeout=self.scaled(timeout))

    def log_mark(self) -> LogMark:
        return LogMark(self._console.mark(), self._journal.mark())

    def logs_since(self, mark: LogMark) -> tuple[str, str]:
        return (self._console.text_since(mark.console_offset),
                self._journal.text_since(mark.journal_offset))

    def write_artifacts(self, directory: Path) -> None:
        """Write console.txt, journal.txt, ignition.json, qemu-stderr.txt and ssh-config.

        A machine that rebooted also gets each boot's slice on its own:
        ``console.boot<N>.txt`` and ``journal.boot<N>.txt`` (N from 1).
        """
        directory.mkdir(parents=True, exist_ok=True)
        console, journal = self._console.text_since(0), self._journal.text_since(0)
        (directory / "console.txt").write_text(console)
        (directory / "journal.txt").write_text(journal)
        if len(self._boot_starts) > 1:
            for n, (boot_console, boot_journal) in enumerate(self._boot_slices(), start=1):
                (directory / f"console.boot{n}.txt").write_text(boot_console)
                (directory / f"journal.boot{n}.txt").write_text(boot_journal)
        if self.ignition is not None:
            (directory / "ignition.json").write_text(json.dumps(self.ignition, indent=2) + "\n")
        if self._emergency.has_content():
            (directory / "ignition-journal.txt").write_text(self._emergency.text_since(0))
        (directory / "qemu-stderr.txt").write_text(self._stderr())  # the workdir goes away
        (directory / "ssh-config").write_text(
            f"Host {self.name}\n"
            f"    HostName {self.ssh_host}\n    Port {self.ssh_port}\n"
            f"    User {self.distro.ssh_user}\n"
            f"    IdentityFile {self.ssh_key.private_path}\n    IdentitiesOnly yes\n"
            "    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n"
        )

    def _boot_slices(self) -> list[tuple[str, str]]:
        """(console, journal) text of each boot.

        The console is cut where each reboot was requested (its file starts with the
        previous boot's shutdown); the journal by the entries' ``_BOOT_ID``, falling
        back to the same offsets when the boot ids do not match the reboots.
        """
        ends: list[LogMark | None] = [*self._boot_starts[1:], None]
        consoles = [
            self._console.text_since(start.console_offset,
                                     None if end is None else end.console_offset)
            for start, end in zip(self._boot_starts, ends, strict=True)
        ]
        raw = self._journal.raw_since(0)
        journals = split_by_boot_id(raw)
        if len(journals) != len(consoles):
            journals = []
            for start, end in zip(self._boot_starts, ends, strict=True):
                stop = None if end is None else end.journal_offset
                journals.append(raw[start.journal_offset:stop])
        return [(c, render_journal(j)) for c, j in zip(consoles, journals, strict=True)]

    def _stderr(self) -> str:
        try:
            return self._paths.qemu_stderr.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (QEMU launch retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scale(accel: Accel) -> float:
    return timeout_scale(accel)
