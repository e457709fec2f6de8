"""What every fault test checks: the run's class and exit code, what it kept, what it left.

A run is ``kolapy run`` in a subprocess with ``TMPDIR`` pointed at a private,
empty directory: whatever kolapy or QEMU leaves behind outside the output
directory shows up there.  A leftover process is any process whose command
line names the test's tmp path (QEMU, socat, ssh, helpers all do).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

KOLAPY = [sys.executable, "-m", "kolapy.cli"]

# Exit codes of `kolapy run` (docs/cli.md "Exit codes").
PASSED, FAILED, BAD_INPUT, REPORTS_UNWRITTEN, INTERRUPTED = 0, 1, 2, 3, 130


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Sandbox:
    """One fault's private tmp dir, output dir and environment."""

    root: Path

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def env(self, **extra: str) -> dict[str, str]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(self.tmp))
        env.pop("PYTEST_XDIST_WORKER", None)
        env.pop("PYTEST_ADDOPTS", None)
        env.update(extra)
        return env

    def argv(self, *args: str, out: Path | None = None) -> list[str]:
        return [*KOLAPY, "run", *args, f"--output-dir={out or self.out}", "--live=plain"]

    def run(self, *args: str, prefix: tuple[str, ...] = (), timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *self.argv(*args)], cwd=self.root, env=env or self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str, out: Path | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args, out=out), cwd=self.root, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def assert_clean(self, within: float = 20.0) -> None:
        """No process names this sandbox; the private TMPDIR is empty."""
        deadline = time.monotonic() + within
        while (pids := leftover_pids(self.root)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:  # never leak from the test itself
            os.kill(pid, signal.SIGKILL)
        assert not pids, f"processes left behind: {pids}"
        left = sorted(p for p in self.tmp.iterdir()) if self.tmp.exists() else []
        # The host-wide memory ledger stays by design; every reservation in it must be gone.
        ledgers = [p for p in left if p.name == f"kolapy-memory-{os.getuid()}"]
        for ledger in ledgers:
            held = sorted(p.name for p in ledger.iterdir() if not p.name.endswith(".lock"))
            assert not held, f"memory reservations left: {held}"
        # pytest's own empty basetemp (pytest-of-<user>/pytest-N) is its retention, not ours.
        basetemps = [p for p in left if p.name.startswith("pytest-of-")
                     and not [f for f in p.rglob("*") if f.is_file()]]
        left = [p.name for p in left if p not in ledgers and p not in basetemps]
        assert not left, f"left in TMPDIR: {left}"


def leftover_pids(root: Path) -> list[int]:
    me = os.getpid()
    out = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != me]


def one_error_line(stderr: str, *needles: str) -> str:
    """The run's ``kolapy: error:`` line; it is one line and names every needle."""
    lines = [ln for ln in stderr.splitlines() if "kolapy: error:" in ln]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def events(out: Path) -> list[dict[str, object]]:
    try:
        text = (out / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_event(proc: subprocess.Popen[str], out: Path, name: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not any(e["event"] == name for e in events(out)):
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {name!r}: {proc.communicate()[0][-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"no {name!r} event within {timeout:.0f}s")
        time.sleep(0.2)


def junit_case(out: Path, name: str) -> ET.Element:
    """The JUnit testcase of kola test ``name`` in a finished run."""
    root = ET.parse(out / "reports" / "junit.xml").getroot()
    for case in root.iter("testcase"):
        if case.get("name") == name:
            return case
    raise AssertionError(f"no testcase {name!r} in {out / 'reports' / 'junit.xml'}")
