"""Run one external test on a machine: upload, start its unit, follow reboots, judge.

The harness side of kola's ``runExternalTest`` (mantle/kola/harness.go) and
kolet's ``run-test-unit``, talking to the shell scripts of
:mod:`kolapy.external.guest` over SSH.
"""

from __future__ import annotations

import io
import shlex
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kolapy.external import guest
from kolapy.external.discover import ExtTest

POLL_S = 2.0
"""Seconds between two looks at the unit."""
_SIGNALS = {1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 6: "ABRT", 8: "FPE", 9: "KILL",
            11: "SEGV", 13: "PIPE", 14: "ALRM", 15: "TERM"}


class GuestMachine(Protocol):
    """What this module needs of a :class:`~kolapy.machine.base.Machine`."""

    name: str

    def run(self, cmd: Any, timeout: float | None = None) -> Any: ...
    def succeed(self, cmd: Any, timeout: float | None = None) -> str: ...
    def copy_to(self, local: Path | str, remote: str) -> None: ...
    def wait_for_reboot(self, old_boot_id: str) -> None: ...

    @property
    def boot_id(self) -> str: ...


@dataclass
class ExtResult:
    """How an external test ended."""

    passed: bool
    reason: str = ""
    """Why it failed (one line), empty when it passed."""
    marks: list[str] = field(default_factory=list)
    """The reboot marks it asked for, in order."""
    boot_ids: list[str] = field(default_factory=list)
    """The boot id of each run of the test (one more than the reboots)."""
    journal: str = ""
    """The unit's journal of every run, in order."""


class ExtTestFailed(AssertionError):
    """An external test failed: non-zero exit, signal, failed unit or timeout."""


def make_bundle(test: ExtTest, out_dir: Path) -> Path:
    """A tar.gz of the executable (as ``exe``) and ``data/`` (symlinks followed)."""
    path = out_dir / "kolapy-ext-bundle.tar.gz"
    with tarfile.open(path, "w:gz", dereference=True) as tar:
        tar.add(test.executable, arcname="exe")
        if test.data is not None:
            tar.add(test.data, arcname="data")
    return path


def install(machine: GuestMachine, test: ExtTest, slot: int) -> None:
    """Upload the test and write its unit (kola's ``kola-runext[-N].service``)."""
    unit = guest.unit_name(slot)
    remote = f"/tmp/kolapy-ext-{slot}.tar.gz"
    with tempfile.TemporaryDirectory(prefix="kolapy-ext-") as tmp:
        machine.copy_to(make_bundle(test, Path(tmp)), remote)
    args = [guest.script("install"), unit, test.name, test.exe_name, guest.data_dir(slot),
            remote, "1" if slot else "0"]
    machine.succeed("sudo " + shlex.join(args))


def parse_status(text: str) -> dict[str, str]:
    """``status`` output -> ``{"reboot": MARK}`` or the unit's properties."""
    if text.startswith("reboot "):
        return {"reboot": text[len("reboot "):].rstrip("\n")}
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def verdict(props: dict[str, str]) -> tuple[bool, str] | None:
    """None while the unit still runs; else (passed, reason) as kola judges it.

    Failure: a non-zero exit, death by a signal (systemd counts SIGTERM as a
    clean exit, as kola does), or any failed unit state.
    """
    active, sub = props.get("ActiveState", ""), props.get("SubState", "")
    result = props.get("Result", "")
    code, status = props.get("ExecMainCode", "0"), props.get("ExecMainStatus", "0")
    if active in ("activating", "reloading", "deactivating") or (
        active == "active" and sub != "exited"
    ):
        return None
    if active == "active" and result == "success":
        return True, ""
    if result == "signal" or code in ("2", "3"):  # CLD_KILLED, CLD_DUMPED
        sig = _SIGNALS.get(int(status), status) if status.isdigit() else status
        return False, f"killed by signal {status} (SIG{sig})"
    if result == "exit-code" or (status.isdigit() and int(status) != 0):
        return False, f"exited with status {status}"
    if active == "inactive" and result == "success":
        return False, "the unit stopped before the test finished"
    return False, f"unit {active}/{sub} (result {result or 'unknown'})"


def _journal(machine: GuestMachine, unit: str) -> str:
    # --sync first: the last lines of a test that just exited may still be in flight
    res = machine.run(f"sudo journalctl --sync; sudo journalctl -b --no-pager "
                      f"-o short-precise -u {shlex.quote(unit)}", timeout=120)
    return str(getattr(res, "stdout", ""))


def run_test(
    machine: GuestMachine,
    test: ExtTest,
    slot: int,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = POLL_S,
) -> ExtResult:
    """Install and run ``test`` until it ends, following autopkgtest reboots.

    ``slot`` 0 is an exclusive test (``kola-runext.service``, reboots allowed);
    N > 0 a non-exclusive one (``kola-runext-N.service``, reboots refused).
    ``timeout_s`` bounds the whole run, reboots included; on expiry the unit is
    stopped and the result is a failure saying so.
    """
    unit = guest.unit_name(slot)
    install(machine, test, slot)
    result = ExtResult(passed=False)
    deadline = clock() + timeout_s
    mark: str | None = None
    journals: list[str] = []
    while True:
        boot = machine.boot_id
        if result.boot_ids and boot == result.boot_ids[-1]:
            result.reason = f"reboot for mark {mark!r} not proven: boot id still {boot}"
            result.journal = "\n".join(journals)
            return result
        result.boot_ids.append(boot)
        start = [guest.script("start"), unit] + ([mark] if mark is not None else [])
        machine.succeed("sudo " + shlex.join(start))
        while True:
            props = parse_status(machine.succeed(f"sudo {guest.script('status')} {unit}"))
            if "reboot" in props:
                break
            judged = verdict(props)
            if judged is not None:
                journals.append(_journal(machine, unit))
                result.passed, result.reason = judged
                if slot:  # a shared machine: the next test should not see this failed unit
                    machine.run(["sudo", "systemctl", "reset-failed", unit], timeout=60)
                result.journal = "\n".join(journals)
                return result
            if clock() >= deadline:
                machine.run(["sudo", "systemctl", "kill", "--signal=KILL", unit], timeout=60)
                journals.append(_journal(machine, unit))
                result.reason = f"timed out after {_minutes(timeout_s)} (timeoutMin)"
                result.journal = "\n".join(journals)
                return result
            sleep(poll_s)
        mark = props["reboot"]
        result.marks.append(mark)
        journals.append(_journal(machine, unit))
        machine.succeed(["sudo", "touch", f"{guest.STATE}/{unit}/reboot-ack"])
        machine.wait_for_reboot(boot)


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} min" if minutes >= 1 else f"{seconds:g} s"


def render(result: ExtResult) -> str:
    """The test's output: reboots followed, then the unit's journal."""
    out = io.StringIO()
    for i, mark in enumerate(result.marks):
        out.write(f"reboot {i + 1}: mark {mark!r}, boot {result.boot_ids[i]} -> "
                  f"{result.boot_ids[i + 1] if i + 1 < len(result.boot_ids) else '?'}\n")
    out.write(result.journal)
    return out.getvalue()
