"""Driving one engine on one machine: commands with actionable failures, the test image.

:class:`EngineOnGuest` runs ``<engine> ...`` as root (``sudo -n``) or as the SSH
user (rootless).  A failed engine command raises :class:`EngineCommandError`
naming the command, its exit code, stderr and the engine's journal slice since
the command started (daemon unit, or podman's own journal identifier).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath

import pytest

from kolapy.containers.archive import ImageArchive
from kolapy.containers.busybox import test_image
from kolapy.containers.engines import Engine
from kolapy.machine.base import Machine
from kolapy.result import CommandResult

#: Default base timeout of one engine command (scaled for TCG by the machine).
ENGINE_TIMEOUT = 120.0
GUEST_ARCHIVE_DIR = "/var/tmp/kolapy-images"
JOURNAL_LINES = 60


class EngineCommandError(AssertionError):
    """An engine command failed; the message says what, how, and what the engine logged."""

    def __init__(self, result: CommandResult, journal: str, why: str = "") -> None:
        self.result = result
        self.journal = journal
        lines = [
            f"engine command failed{': ' + why if why else ''}",
            f"  command:   {result.command}",
            f"  exit code: {result.rc}",
            "  stderr:",
            *("    " + line for line in (result.stderr.strip() or "(empty)").splitlines()[-30:]),
        ]
        if result.stdout.strip():
            lines += ["  stdout (tail):",
                      *("    " + line for line in result.stdout.strip().splitlines()[-10:])]
        lines += ["  engine journal since the command started:",
                  *("    " + line for line in (journal.strip() or "(empty)").splitlines())]
        super().__init__("\n".join(lines))


def require_engine(machine: Machine, engine: Engine) -> None:
    """Skip the test (reason ``image has no <binary>``) if the image lacks the engine."""
    if machine.run(["sh", "-c", f"command -v {shlex.quote(engine.binary)}"], timeout=30).failed:
        pytest.skip(f"image has no {engine.binary}")


def http_get(url: str) -> str:
    """Shell text printing the body of ``GET url`` with what the guest has (curl or busybox).

    No ``wget -T``: Debian's busybox 1.35 wget crashes (SIGSEGV) with it; ``timeout``
    bounds the request instead.
    """
    q = shlex.quote(url)
    return (f"if command -v curl >/dev/null; then curl -fsS --max-time 20 {q}; "
            f"else timeout 20 busybox wget -q -O - {q}; fi")


class EngineOnGuest:
    """One engine on one machine, as root or (``rootless=True``) as the SSH user."""

    def __init__(self, machine: Machine, engine: Engine, *, rootless: bool = False) -> None:
        self.machine = machine
        self.engine = engine
        self.rootless = rootless
        self._image: ImageArchive | None = None

    # ---- commands ----------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        """The argv running ``<engine> args...`` with the right privileges."""
        prefix = [] if self.rootless else ["sudo", "-n"]
        return [*prefix, self.engine.binary, *args]

    def _since(self) -> str:
        return self.machine.run("date '+%Y-%m-%d %H:%M:%S'", timeout=30).stdout.strip()

    def journal_since(self, since: str) -> str:
        """The engine's journal lines since ``since`` (``journalctl --since`` format)."""
        if self.engine.daemon_unit:
            sel = ["-u", self.engine.daemon_unit]
            if self.engine.socket_unit:
                sel += ["-u", self.engine.socket_unit]
        else:
            sel = ["-t", self.engine.binary, "-t", "conmon"]
        args = ["journalctl", "--no-pager", "-o", "short-precise", "-n", str(JOURNAL_LINES),
                *sel]
        if since:
            args += ["--since", since]
        r = self.machine.run(["sudo", "-n", *args], timeout=60)
        return r.stdout if r.succeeded else f"(journalctl failed: {r.stderr.strip()})"

    def run(self, *args: str, timeout: float = ENGINE_TIMEOUT) -> CommandResult:
        """Run ``<engine> args...`` and return the result whatever its exit code."""
        return self.machine.run(self.argv(*args), timeout=timeout)

    def ok(self, *args: str, timeout: float = ENGINE_TIMEOUT, why: str = "") -> str:
        """Run ``<engine> args...``; return stdout or raise :class:`EngineCommandError`."""
        __tracebackhide__ = True
        since = self._since()
        result = self.run(*args, timeout=timeout)
        if result.failed:
            raise EngineCommandError(result, self.journal_since(since), why)
        return result.stdout

    def shell_ok(self, text: str, timeout: float = ENGINE_TIMEOUT, why: str = "") -> str:
        """Run shell ``text`` on the guest (engine context for errors); return stdout."""
        __tracebackhide__ = True
        since = self._since()
        result = self.machine.run(text, timeout=timeout)
        if result.failed:
            raise EngineCommandError(result, self.journal_since(since), why)
        return result.stdout

    def inspect(self, template: str, *names: str) -> str:
        """``<engine> inspect -f TEMPLATE names...``, stripped."""
        return self.ok("inspect", "-f", template, *names).strip()

    def has_image(self, name: str) -> bool:
        """Whether the engine's store holds image ``name``."""
        return self.run(*self.engine.image_inspect, name, timeout=60).succeeded

    def remove_containers(self, names: Sequence[str]) -> None:
        """Best-effort ``rm -f`` (cleanup; never raises)."""
        if names:
            self.run("rm", "-f", *names, timeout=ENGINE_TIMEOUT)

    # ---- the test image ----------------------------------------------------------------

    @property
    def image(self) -> str:
        """The test image's name (after :meth:`load_image`)."""
        if self._image is None:
            self._image = test_image(self.machine.arch)
        return self._image.tag

    def guest_archive(self) -> str:
        """Copy the test image archive to the guest once per machine; return its path."""
        archive = test_image(self.machine.arch)
        self._image = archive
        remote = f"{GUEST_ARCHIVE_DIR}/{archive.image_id.removeprefix('sha256:')[:16]}.tar"
        if self.machine.run(["test", "-s", remote], timeout=30).failed:
            self.machine.succeed(["mkdir", "-p", "-m", "0755", GUEST_ARCHIVE_DIR], timeout=30)
            tmp = str(PurePosixPath(remote).with_suffix(".part"))
            self.machine.copy_to(archive.path, tmp)
            self.machine.succeed(["mv", tmp, remote], timeout=30)
        return remote

    def load_image(self) -> str:
        """Make the test image present in this engine's store; return its name."""
        remote = self.guest_archive()
        assert self._image is not None
        if self.run(*self.engine.image_inspect, self._image.tag, timeout=60).failed:
            self.ok("load", "-i", remote, timeout=300, why="loading the test image")
        self.ok(*self.engine.image_inspect, self._image.tag, timeout=60,
                why="the test image is not listed after load")
        return self._image.tag
