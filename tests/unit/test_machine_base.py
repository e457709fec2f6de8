"""The Machine API helpers, driven through a fake ``_execute`` (no VM)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from kolapy.enums import Arch
from kolapy.errors import CommandFailedError, InfraError, TimeoutExpired
from kolapy.machine.base import LogMark, Machine, to_shell
from kolapy.result import CommandResult


class LocalMachine(Machine):
    """Runs commands on the host with bash; scripted answers override."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.answers: dict[str, list[CommandResult]] = {}
        self.boot = "boot-1"

    def _execute(self, cmd: str, timeout: float, stdin: bytes | None = None) -> CommandResult:
        self.commands.append(cmd)
        for key, queue in self.answers.items():
            if key in cmd and queue:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        if cmd == "cat /proc/sys/kernel/random/boot_id":
            return CommandResult(cmd, 0, self.boot + "\n", "", 0.0)
        start = time.monotonic()
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(cmd, p.returncode, p.stdout, p.stderr, time.monotonic() - start)

    name = "local"  # type: ignore[assignment]
    arch = Arch.X86_64  # type: ignore[assignment]
    console_log_path = Path("/dev/null")  # type: ignore[assignment]

    def ssh_command(self) -> str:
        return "true"

    def _reboot_and_reconnect(self, old_boot_id: str) -> None:
        self.boot = self.next_boot

    def copy_to(self, local, remote):  # pragma: no cover - not exercised here
        raise NotImplementedError

    def copy_from(self, remote, local):  # pragma: no cover
        raise NotImplementedError

    def log_mark(self) -> LogMark:
        return LogMark(0, 0)

    def logs_since(self, mark: LogMark) -> tuple[str, str]:
        return "", ""

    def wait_for_console(self, regex: str, timeout: float | None = None) -> re.Match[str]:
        raise NotImplementedError


def r(rc: int, out: str = "", err: str = "") -> CommandResult:
    return CommandResult("x", rc, out, err, 0.0)


@pytest.fixture
def m() -> LocalMachine:
    return LocalMachine()


def test_argv_lists_are_quoted_strings_are_shell(m):
    assert m.succeed(["echo", "a b", "$HOME"]) == "a b $HOME\n"
    assert m.succeed("echo a   b | tr a-z A-Z") == "A B\n"
    assert to_shell(["ls", "it's"]) == "ls 'it'\"'\"'s'"


def test_run_returns_result_whatever_the_exit_code(m):
    res = m.run("echo out; echo err >&2; exit 3")
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert res.failed and not res.succeeded


def test_succeed_raises_with_command_rc_and_output(m):
    with pytest.raises(CommandFailedError) as exc:
        m.succeed("echo partial; echo boom >&2; exit 4")
    e = exc.value
    assert (e.command, e.rc, e.stdout, e.stderr) == (
        "echo partial; echo boom >&2; exit 4", 4, "partial\n", "boom\n")
    text = str(e)
    assert "exit code 4" in text and "boom" in text and "partial" in text
    assert isinstance(e, AssertionError)  # a test failure, not an infra error


def test_fail_returns_stderr_and_raises_on_success(m):
    assert m.fail("echo nope >&2; false") == "nope\n"
    with pytest.raises(CommandFailedError, match="succeeded but was expected to fail"):
        m.fail("true")


def test_wait_until_succeeds_retries(m):
    m.answers["probe"] = [r(1), r(1), r(0, "ok\n")]
    assert m.wait_until_succeeds("probe", timeout=20) == "ok\n"
    assert m.commands.count("probe") == 3


def test_wait_until_succeeds_times_out_with_last_stderr(m):
    with pytest.raises(TimeoutExpired, match="last exit code 1, stderr: still broken"):
        m.wait_until_succeeds("echo still broken >&2; false", timeout=1.5)


def test_wait_for_unit_active_after_activating(m):
    m.answers["ActiveState"] = [r(0, "activating\n"), r(0, "active\n")]
    m.wait_for_unit("sshd.service", timeout=20)
    assert any("'sshd.service'" in c or "sshd.service" in c for c in m.commands)


def test_wait_for_unit_fails_fast_when_failed(m):
    m.answers["ActiveState"] = [r(0, "failed\n")]
    m.answers["systemctl status"] = [r(3, "x.service: Failed with result 'exit-code'\n")]
    start = time.monotonic()
    with pytest.raises(CommandFailedError, match="exit-code"):
        m.wait_for_unit("x.service", timeout=60)
    assert time.monotonic() - start < 5


def test_wait_for_file_and_port_use_the_primitive(m, tmp_path):
    target = tmp_path / "flag"
    target.write_text("")
    m.wait_for_file(str(target), timeout=5)
    m.answers["ss -Htln"] = [r(0, "LISTEN 0 128 *:22\n")]
    m.wait_for_open_port(22, timeout=5)
    assert any("sport = :22" in c for c in m.commands)


def test_reboot_proves_new_boot_id(m):
    m.next_boot = "boot-2"
    m.reboot()
    assert m.boot_id == "boot-2"
    m.next_boot = "boot-2"
    with pytest.raises(InfraError, match="reboot did not happen"):
        m.reboot()


def test_journal_command(m):
    m.answers["journalctl"] = [r(0, "log\n")]
    assert m.journal(unit="sshd", cursor="s=1") == "log\n"
    cmd = m.commands[-1]
    assert "journalctl -b" in cmd and "-u sshd" in cmd and "--after-cursor=s=1" in cmd


def test_command_result():
    res = CommandResult("true", 0, "", "", 0.1)
    assert res.succeeded and not res.failed
