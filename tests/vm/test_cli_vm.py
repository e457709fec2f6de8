"""CLI verbs on the reference image: spawn, --rerun, --keep-failed (each boots machines)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

KOLAPY = [sys.executable, "-m", "kolapy.cli"]


def _qemu_on_port(port: str) -> str:
    r = subprocess.run(["pgrep", "-af", f"127.0.0.1:{port}-"], capture_output=True, text=True)
    return "\n".join(line for line in r.stdout.splitlines() if "qemu-system" in line)


def _read_until(proc: subprocess.Popen[str], stream: str, pattern: str, timeout: float) -> str:
    """Read lines of the process's stdout/stderr until one matches; return all read."""
    pipe = getattr(proc, stream)
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = pipe.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    proc.kill()
    raise AssertionError(f"never saw {pattern!r}; got:\n{''.join(seen)[-4000:]}")


def _ssh_ok(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shlex.split(command), "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "true"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_spawn_prints_working_ssh_and_stops_on_ctrl_c(ref_image: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*KOLAPY, "spawn", f"--nestos-image={ref_image}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        out = _read_until(proc, "stdout", r"^ssh:", timeout=900)
        command = out.splitlines()[-1].split(":", 1)[1].strip()
        port = re.search(r"-p (\d+)", command).group(1)  # type: ignore[union-attr]
        assert _qemu_on_port(port), "no QEMU serves the printed port"
        r = _ssh_ok(command)
        assert r.returncode == 0, r.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        assert _qemu_on_port(port) == ""
    finally:
        proc.kill()
        proc.wait()


FLAKY = """
import os
from kolapy import kola

@kola(name="flaky.once", exclusive=False)
def test_once(machine):
    machine.succeed("true")
    marker = os.environ["FLAKY_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise AssertionError("first attempt fails on purpose")
"""


def test_rerun_keeps_both_results(ref_image: Path, tmp_path: Path) -> None:
    tests = tmp_path / "test_flaky.py"
    tests.write_text(FLAKY)
    out = tmp_path / "out"
    r = subprocess.run(
        [
            *KOLAPY,
            "run",
            "flaky.once",
            f"--tests={tests}",
            "--rerun",
            f"--nestos-image={ref_image}",
            f"--output-dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env={**os.environ, "FLAKY_MARKER": str(tmp_path / "marker")},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    first = json.loads((out / "reports/report.json").read_text())
    second = json.loads((out / "rerun/reports/report.json").read_text())
    assert [(t["name"], t["result"]) for t in first["tests"]] == [("flaky.once", "FAIL")]
    assert [(t["name"], t["result"]) for t in second["tests"]] == [("flaky.once", "PASS")]


FAILING = """
from kolapy import kola

@kola(name="failing.now")
def test_now(machine):
    machine.succeed("test -e /nonexistent/kolapy")
"""


def test_keep_failed_leaves_machine_until_ctrl_c(ref_image: Path, tmp_path: Path) -> None:
    tests = tmp_path / "test_failing.py"
    tests.write_text(FAILING)
    proc = subprocess.Popen(
        [
            *KOLAPY,
            "run",
            "failing.now",
            f"--tests={tests}",
            "--keep-failed",
            f"--nestos-image={ref_image}",
            f"--output-dir={tmp_path / 'out'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        err = _read_until(proc, "stderr", r"press Ctrl-C", timeout=900)
        command = re.search(r"ssh:\s+(ssh .*)", err).group(1)  # type: ignore[union-attr]
        port = re.search(r"-p (\d+)", command).group(1)  # type: ignore[union-attr]
        r = _ssh_ok(command)
        assert r.returncode == 0, r.stderr  # the failed test's machine is still up
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 1  # the test failed
        assert _qemu_on_port(port) == ""
    finally:
        proc.kill()
        proc.wait()
