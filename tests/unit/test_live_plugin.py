"""The live view through the plugin, with fake machines (no VM): plain lines when not a tty."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# The real MachinePool.boot runs (it logs the events); only the machine is fake.
CONFTEST = """
import time
from dataclasses import replace
from kolapy.errors import BootError, CommandFailedError
from kolapy.pool import MachinePool

class FakeMachine:
    def __init__(self, spec, test):
        self.spec, self.name, self.test = spec, spec.name, test
    def start(self):
        pass
    def wait_ready(self):
        time.sleep(0.3)
        if self.test == "badboot":
            raise BootError("no SSH after 0.3 s")
    def log_mark(self):
        return 0
    def logs_since(self, mark):
        return "", ""
    def succeed(self, cmd):
        if cmd.startswith("false"):
            raise CommandFailedError(cmd, 1, "", "boom", "failed")
        return ""
    def stop(self):
        pass
    def write_artifacts(self, d):
        pass

def fake_new_machine(self, spec, artifact_name):
    self._serial += 1
    return FakeMachine(replace(spec, name=f"{self.worker}-{self._serial}"), artifact_name)

MachinePool._new_machine = fake_new_machine
MachinePool.boot_or_restore = MachinePool.boot  # fakes cannot be saved and restored
"""

TESTS = """
from kolapy import kola

pytestmark = kola(name="suite", exclusive=True)

def test_one(machine):
    machine.succeed("echo one")

def test_two(machine):
    machine.succeed("echo two")

@kola(name="other")
def test_other(machine):
    machine.succeed("false && echo other")

@kola(name="badboot")
def test_badboot(machine):
    pass
"""

LINE = r"^\[ *\d+\.\ds\] "


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path: Path):
    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_kola=TESTS)
    out = tmp_path / "out"

    def go(*args: str) -> tuple[pytest.RunResult, Path]:
        result = pytester.runpytest_subprocess(
            f"--nestos-image={img}", f"--kola-output-dir={out}", "-p", "no:cacheprovider", *args
        )
        return result, out

    return go


def _events(out: Path) -> list[dict[str, str]]:
    return [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]


def test_plain_lines_replace_pytest_dots_when_not_a_tty(run) -> None:
    result, out = run("--kola-live")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    text = result.stdout.str()
    assert "\x1b[" not in text
    for pattern in [
        r"4 tests to run",
        r"machine gw-1 booting for suite",
        r"machine gw-1 ready \(\d+\.\d s\)",
        r"PASS suite/one \(\d+\.\d s\)",
        r"PASS suite/two \(\d+\.\d s\)",
        r"machine gw-1 stopped",
        r"FAIL other \(\d+\.\d s\): CommandFailedError: command 'false && echo other' failed",
        r"machine gw-3 failed to boot after \d+\.\d s: no SSH after 0\.3 s",
        r"ERROR badboot \(\d+\.\d s\): BootError: no SSH after 0\.3 s",
    ]:
        assert re.search(LINE + pattern, text, re.M), (pattern, text)
    assert re.search(
        r"^kolapy: ran 4 tests and subtests in \d+s: 2 PASS, 1 FAIL, 1 ERROR; "
        r"3 machines \(boot mean \d+\.\d s, max \d+\.\d s\)$",
        text,
        re.M,
    ), text
    assert not re.search(r"^test_kola\.py [.FE]", text, re.M)  # no dots line
    # pytest's own end is intact: failure details, short summary words, the kolapy table
    assert "FAILED test_kola.py::test_other" in text
    assert "ERROR test_kola.py::test_badboot" in text
    assert "kolapy results" in text
    assert [e["event"] for e in _events(out) if e["machine"] == "gw-1"] == [
        "booting",
        "ready",
        "test",  # suite/one and suite/two: the report's timeline
        "test",
        "stopping",
        "stopped",
    ]


def test_plain_lines_under_xdist(run) -> None:
    result, out = run("--kola-live=plain", "-n", "2")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    text = result.stdout.str()
    assert re.search(LINE + r"machine gw[01]-\d ready \(\d+\.\d s\)$", text, re.M), text
    assert re.search(LINE + r"PASS suite/two", text, re.M), text
    assert re.search(LINE + r"ERROR badboot", text, re.M), text
    assert {e["worker"] for e in _events(out)} <= {"gw0", "gw1"}


def test_off_by_default_for_pytest_users(run) -> None:
    result, out = run()
    result.assert_outcomes(passed=2, failed=1, errors=1)
    text = result.stdout.str()
    assert not re.search(LINE, text, re.M)
    assert re.search(r"^test_kola\.py \.\.FE", text, re.M), text  # pytest's own progress
    assert _events(out)  # the event log is written anyway


def test_rich_view_on_a_terminal(pytester: pytest.Pytester, run, tmp_path: Path) -> None:
    """In a pseudo-terminal, frames with the booting machine reach the terminal even
    while pytest captures the test's output (no -n: the tests run in that process)."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    args = [f"--nestos-image={tmp_path / 'img.qcow2'}", f"--kola-output-dir={tmp_path / 'out'}"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *args,
            "--kola-live",
            "-k",
            "one",
        ],
        cwd=pytester.path,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    try:
        while data := os.read(primary, 65536):
            chunks.append(data)
    except OSError:  # EIO: the child closed the terminal
        pass
    finally:
        os.close(primary)
        proc.wait(timeout=120)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 0, text
    assert re.search(r"machine\s+gw-1\s+suite\s+booting", text), text  # drawn during setup
    assert re.search(r"PASS\s+suite/one", text), text
    assert "kolapy: ran 1 test and subtests" in text
    assert "Captured stdout" not in text and "[100%]" not in text
