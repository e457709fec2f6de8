"""The Machine API a test sees, built on one private primitive (NixOS-test-driver style).

A backend implements :meth:`Machine._execute` (plus reboot/copy/log plumbing); every
public helper here is written in terms of it and of :func:`kolapy.retry.retry`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
import re
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kolapy.enums import Arch
from kolapy.errors import CommandFailedError, InfraError, TimeoutExpired
from kolapy.result import CommandResult
from kolapy.retry import retry
from kolapy.transport.output import DEFAULT_OUTPUT_CAP, OutputSpool

log = logging.getLogger("kolapy.machine")

Command = str | Sequence[str]
Output = Path | str | BinaryIO
"""Where ``run(..., stdout=)`` streams a command's stdout: a path or a binary file."""


@dataclass(frozen=True)
class LogMark:
    """Positions in the console and journal streams, for per-test log slices."""

    console_offset: int
    journal_offset: int
    boot_id: str = ""


def to_shell(cmd: Command) -> str:
    """Shell text for ``cmd``: a string is shell text, a sequence is an argv to quote."""
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


@contextlib.contextmanager
def timed(what: str, logger: logging.Logger = log) -> Iterator[None]:
    """Log ``what`` with its duration ("waiting for unit sshd (3.2 s)")."""
    start = time.monotonic()
    try:
        yield
    except BaseException:
        logger.info("%s: failed (%.1f s)", what, time.monotonic() - start)
        raise
    logger.info("%s (%.1f s)", what, time.monotonic() - start)


class Machine(abc.ABC):
    """A booted machine under test."""

    default_timeout: float = 300.0
    """Seconds a command may run unless ``timeout=`` says otherwise (already scaled)."""

    artifact_dir: Path | None = None
    """Where this machine's files are kept (set by the machine pool of a run)."""

    output_cap: int = DEFAULT_OUTPUT_CAP
    """Bytes of a command's stdout (or stderr) kept in memory; past it the stream is
    spooled to ``<artifact_dir>/outputs/`` and the result names the file."""

    # ---- what a backend provides -------------------------------------------------------

    @abc.abstractmethod
    def _execute(self, cmd: str, timeout: float, stdin: bytes | None = None) -> CommandResult:
        """Run shell text on the machine as its SSH user. The one primitive."""

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    @property
    @abc.abstractmethod
    def arch(self) -> Arch: ...

    @property
    @abc.abstractmethod
    def console_log_path(self) -> Path: ...

    @abc.abstractmethod
    def ssh_command(self) -> str:
        """An ``ssh ...`` command line ready to paste into a terminal."""

    @abc.abstractmethod
    def _reboot_and_reconnect(self, old_boot_id: str) -> None:
        """Trigger a reboot, wait for it, and reconnect the transport."""

    @abc.abstractmethod
    def copy_to(self, local: Path | str, remote: str) -> None:
        """Copy a host file onto the machine (written as the SSH user)."""

    @abc.abstractmethod
    def copy_from(self, remote: str, local: Path | str) -> None:
        """Copy a file from the machine to the host."""

    @abc.abstractmethod
    def log_mark(self) -> LogMark:
        """The current end of the console and journal streams."""

    @abc.abstractmethod
    def logs_since(self, mark: LogMark) -> tuple[str, str]:
        """(console text, rendered journal) produced since ``mark``."""

    @abc.abstractmethod
    def wait_for_console(self, regex: str, timeout: float | None = None) -> re.Match[str]:
        """Wait until the serial console shows ``regex`` (from now on)."""

    def _execute_to(self, cmd: str, timeout: float, stdout: BinaryIO) -> CommandResult:
        """:meth:`_execute` with stdout streamed into ``stdout``.  This default holds the
        output first; a backend that can stream overrides it."""
        result = self._execute(cmd, timeout)
        stdout.write(result.stdout.encode())
        name = getattr(stdout, "name", None)
        return dataclasses.replace(result, stdout="",
                                   stdout_file=Path(name) if isinstance(name, str) else None)

    def output_spool(self) -> OutputSpool | None:
        """Where outputs past :attr:`output_cap` go: ``<artifact_dir>/outputs``, or None
        (held whole) for a machine without an artifact directory."""
        if self.artifact_dir is None:
            return None
        directory = Path(self.artifact_dir).absolute() / "outputs"
        spool: OutputSpool | None = self.__dict__.get("_output_spool")
        if spool is None or spool.directory != directory:
            spool = OutputSpool(directory)
            self.__dict__["_output_spool"] = spool
        spool.cap = self.output_cap
        return spool

    def scaled(self, seconds: float) -> float:
        """A base timeout stretched for slow accelerators (backends override)."""
        return seconds

    # ---- commands ------------------------------------------------------------------------

    def run(self, cmd: Command, timeout: float | None = None, *,
            stdout: Output | None = None) -> CommandResult:
        """Run ``cmd`` and return its result, whatever its exit code.

        ``timeout`` is a base value in seconds, stretched by :meth:`scaled` like every
        other timeout; without it the backend's default applies.  ``stdout`` (a path or
        a binary file) receives the whole stdout as it arrives, nothing of it held in
        memory; the result's ``stdout`` is then empty and ``stdout_file`` names a path.
        Without it, a stdout past :attr:`output_cap` is spooled (see ``CommandResult``).
        """
        text = to_shell(cmd)
        bound = self.scaled(timeout) if timeout is not None else self.default_timeout
        if stdout is None:
            result = self._execute(text, bound)
        elif isinstance(stdout, (str, Path)):
            with Path(stdout).open("wb") as f:
                result = self._execute_to(text, bound, f)
        else:
            result = self._execute_to(text, bound, stdout)
        log.debug("%s: %r -> rc %d (%.1f s)", self.name, text, result.rc, result.duration)
        return result

    def succeed(self, cmd: Command, timeout: float | None = None, *,
                stdout: Output | None = None) -> str:
        """Run ``cmd``; return its stdout, or raise :class:`CommandFailedError`.

        ``stdout``: stream it to that path or binary file instead (returns ``""``).
        """
        __tracebackhide__ = True
        result = self.run(cmd, timeout, stdout=stdout)
        if result.failed:
            raise CommandFailedError(result.command, result.rc, result.stdout, result.stderr,
                                     "failed")
        return result.stdout

    def fail(self, cmd: Command, timeout: float | None = None) -> str:
        """Run ``cmd``, which must fail; return its stderr."""
        __tracebackhide__ = True
        result = self.run(cmd, timeout)
        if result.succeeded:
            raise CommandFailedError(result.command, result.rc, result.stdout, result.stderr,
                                     "succeeded but was expected to fail")
        return result.stderr

    # ---- waits (all through kolapy.retry) ------------------------------------------------------

    def wait_until_succeeds(
        self, cmd: Command, timeout: float = 60.0, attempt_timeout: float | None = None
    ) -> str:
        """Retry ``cmd`` until it exits 0 (``timeout`` is a base value, scaled); return stdout."""
        __tracebackhide__ = True
        text = to_shell(cmd)
        total = self.scaled(timeout)
        per_try = attempt_timeout if attempt_timeout is not None else max(5.0, total / 4)
        last: list[CommandResult] = []

        def attempt(bound: float) -> str | None:
            result = self._execute(text, bound)
            last[:] = [result]
            return result.stdout if result.succeeded else None

        with timed(f"{self.name}: waiting for {text!r} to succeed"):
            try:
                return retry(attempt, what=repr(text), deadline=total, attempt_timeout=per_try)
            except TimeoutExpired as exc:
                if last:
                    r = last[0]
                    raise TimeoutExpired(
                        f"{exc}; last exit code {r.rc}, stderr: {r.stderr.strip()[-500:]}"
                    ) from exc
                raise

    def wait_for_unit(self, unit: str, timeout: float = 60.0) -> None:
        """Wait until ``unit`` is active; fail at once if it enters ``failed``."""
        __tracebackhide__ = True
        quoted = shlex.quote(unit)

        def attempt(bound: float) -> bool | None:
            r = self._execute(
                f"systemctl show -p ActiveState --value {quoted}", bound
            )
            state = r.stdout.strip()
            if state == "active":
                return True
            if state == "failed":
                status = self._execute(f"systemctl status --no-pager -l {quoted}", bound)
                raise CommandFailedError(
                    f"systemctl is-active {unit}", 3, status.stdout, status.stderr,
                    "reports the unit failed",
                )
            return None

        with timed(f"{self.name}: waiting for unit {unit}"):
            retry(attempt, what=f"unit {unit}", deadline=self.scaled(timeout),
                  attempt_timeout=self.scaled(10.0), give_up_on=(CommandFailedError,))

    def wait_for_file(self, path: str, timeout: float = 60.0) -> None:
        """Wait until ``path`` exists on the machine."""
        __tracebackhide__ = True
        with timed(f"{self.name}: waiting for file {path}"):
            self.wait_until_succeeds(["test", "-e", path], timeout=timeout)

    def wait_for_open_port(self, port: int, timeout: float = 60.0) -> None:
        """Wait until something listens on TCP ``port`` inside the machine."""
        __tracebackhide__ = True
        with timed(f"{self.name}: waiting for open port {port}"):
            self.wait_until_succeeds(
                f"ss -Htln 'sport = :{int(port)}' | grep -q .", timeout=timeout
            )

    # ---- reboot and identity ------------------------------------------------------------

    @property
    def boot_id(self) -> str:
        """This boot's ``/proc/sys/kernel/random/boot_id``."""
        return self.succeed("cat /proc/sys/kernel/random/boot_id", timeout=10).strip()

    def reboot(self) -> None:
        """Reboot and prove it: the boot_id must change and the machine be ready again."""
        old = self.boot_id
        with timed(f"{self.name}: reboot"):
            self._reboot_and_reconnect(old)
            new = self.boot_id
        if new == old:
            raise InfraError(f"{self.name}: reboot did not happen (boot_id still {old})")

    # ---- logs -------------------------------------------------------------------------------

    def journal(self, unit: str | None = None, cursor: str | None = None) -> str:
        """The journal of this boot as text (``journalctl -b``), optionally one unit's."""
        args = ["journalctl", "-b", "--no-pager", "-o", "short-precise"]
        if unit:
            args += ["-u", unit]
        if cursor:
            args += [f"--after-cursor={cursor}"]
        return self.succeed(["sudo", *args])
