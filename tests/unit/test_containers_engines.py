"""The engine table, the shared Ignition, and actionable engine-command failures (no VM)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from kolapy.containers.engines import DOCKER, ENGINES, ISULA, PODMAN
from kolapy.containers.guest import EngineCommandError, EngineOnGuest, require_engine
from kolapy.containers.ignition import (
    DOCKER_DAEMON_JSON,
    PODMAN_REGISTRIES_DROPIN,
    REGISTRY_ADDRESS,
    container_ignition,
)
from kolapy.enums import Arch
from kolapy.machine.base import LogMark, Machine
from kolapy.result import CommandResult

PODMAN_INFO = """\
host:
  arch: amd64
  cgroupControllers:
  - cpu
  cgroupManager: systemd
  cgroupVersion: v2
store:
  graphDriverName: overlay
  graphRoot: /var/lib/containers/storage
"""
DOCKER_INFO = """\
Server:
 Storage Driver: overlay2
  Backing Filesystem: extfs
 Logging Driver: json-file
 Cgroup Driver: systemd
 Cgroup Version: 2
"""
ISULA_INFO = """\
Containers: 0
Storage Driver: overlay2
Cgroup Driver: cgroupfs
"""


@pytest.mark.parametrize(("engine", "info", "storage", "driver", "version"), [
    (PODMAN, PODMAN_INFO, "overlay", "systemd", 2),
    (DOCKER, DOCKER_INFO, "overlay2", "systemd", 2),
    (ISULA, ISULA_INFO, "overlay2", "cgroupfs", None),
])
def test_info_parsing(engine, info, storage, driver, version) -> None:
    assert engine.storage_driver(info) == storage
    assert engine.cgroup_driver(info) == driver
    assert engine.cgroup_version(info) == version
    assert engine.storage_driver("nothing here") is None


def test_table_differences() -> None:
    assert set(ENGINES) == {"podman", "docker", "isula"}
    assert not PODMAN.has_daemon and not PODMAN.restart_policy
    assert DOCKER.daemon_unit == "docker.service" and DOCKER.restart_policy
    assert ISULA.daemon_unit == "isulad.service" and ISULA.image_inspect == ("inspect",)
    assert {e.binary for e in ENGINES.values()} == {"podman", "docker", "isula"}


def test_ignition_configures_the_host_registry() -> None:
    cfg = container_ignition().to_dict()
    files = {f["path"]: f for f in cfg["storage"]["files"]}
    assert set(files) == {PODMAN_REGISTRIES_DROPIN, DOCKER_DAEMON_JSON}
    from urllib.parse import unquote

    def body(path: str) -> str:
        return unquote(files[path]["contents"]["source"].removeprefix("data:,"))

    podman = tomllib.loads(body(PODMAN_REGISTRIES_DROPIN))
    assert podman["registry"] == [{"location": REGISTRY_ADDRESS, "insecure": True}]
    assert json.loads(body(DOCKER_DAEMON_JSON)) == {"insecure-registries": [REGISTRY_ADDRESS]}
    units = {u["name"]: u for u in cfg["systemd"]["units"]}
    assert units["docker.socket"]["enabled"] is True
    assert units["isulad.service"]["enabled"] is True


class ScriptedMachine(Machine):
    """Answers commands from a script: first matching substring wins; default rc 0."""

    name = "scripted"  # type: ignore[assignment]
    arch = Arch.X86_64  # type: ignore[assignment]
    console_log_path = Path("/dev/null")  # type: ignore[assignment]

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        self.answers = answers
        self.commands: list[str] = []

    def _execute(self, cmd: str, timeout: float, stdin: bytes | None = None) -> CommandResult:
        self.commands.append(cmd)
        for key, result in self.answers.items():
            if key in cmd:
                return CommandResult(cmd, result.rc, result.stdout, result.stderr, 0.0)
        return CommandResult(cmd, 0, "", "", 0.0)

    def ssh_command(self) -> str:
        return "true"

    def _reboot_and_reconnect(self, old_boot_id: str) -> None:
        raise NotImplementedError

    def copy_to(self, local, remote):  # pragma: no cover
        raise NotImplementedError

    def copy_from(self, remote, local):  # pragma: no cover
        raise NotImplementedError

    def log_mark(self) -> LogMark:
        return LogMark(0, 0)

    def logs_since(self, mark: LogMark) -> tuple[str, str]:
        return "", ""

    def wait_for_console(self, regex: str, timeout: float | None = None) -> re.Match[str]:
        raise NotImplementedError


def _res(rc: int, out: str = "", err: str = "") -> CommandResult:
    return CommandResult("", rc, out, err, 0.0)


def test_failed_engine_command_is_actionable() -> None:
    m = ScriptedMachine({
        "date ": _res(0, "2026-12-01 10:00:00\n"),
        "journalctl": _res(0, "dockerd[42]: level=error msg=\"planted daemon error\"\n"),
        "docker run": _res(125, "", "docker: Cannot connect to the Docker daemon.\n"),
    })
    eg = EngineOnGuest(m, DOCKER)
    with pytest.raises(EngineCommandError) as info:
        eg.ok("run", "-d", "busybox", why="run -d")
    text = str(info.value)
    assert "sudo -n docker run -d busybox" in text
    assert "exit code: 125" in text
    assert "Cannot connect to the Docker daemon" in text
    assert "planted daemon error" in text
    journal_cmd = next(c for c in m.commands if "journalctl" in c)
    assert "-u docker.service" in journal_cmd and "--since '2026-12-01 10:00:00'" in journal_cmd


def test_rootless_runs_without_sudo_and_podman_journal_by_identifier() -> None:
    m = ScriptedMachine({"podman run": _res(1, "", "Error: image not known\n")})
    eg = EngineOnGuest(m, PODMAN, rootless=True)
    assert eg.argv("ps") == ["podman", "ps"]
    assert EngineOnGuest(m, PODMAN).argv("ps") == ["sudo", "-n", "podman", "ps"]
    with pytest.raises(EngineCommandError, match="image not known"):
        eg.ok("run", "x")
    assert any("journalctl" in c and "-t podman" in c for c in m.commands)


def test_missing_engine_skips_naming_the_binary() -> None:
    m = ScriptedMachine({"command -v isula": _res(1)})
    with pytest.raises(pytest.skip.Exception, match=r"^image has no isula$"):
        require_engine(m, ISULA)
    require_engine(m, DOCKER)  # present: no skip
