"""A background ``kolapy run -j 2`` stopped by SIGTERM keeps every machine's artifacts.

A background job has SIGINT ignored, and its xdist workers inherit that; execnet
stops a worker with SIGINT and SIGKILLs it 10 s later.  Before kolapy.interrupts,
such a worker died without its teardown: no artifacts, a leaked work dir (seen
with an interrupted k8s.cluster).

CI cost: no boot.  QEMU starts on a blank disk, so each machine sits in its boot
until the run is interrupted (~20 s in all).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

TESTS = """
from kolapy import kola

@kola(name="cut.one")
def test_one(machine):
    machine.succeed("true")

@kola(name="cut.two")
def test_two(machine):
    machine.succeed("true")
"""


def _booting(out: Path) -> int:
    try:
        lines = (out / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(json.loads(line)["event"] == "booting" for line in lines)


def _as_background_job() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a script does


def test_sigterm_to_a_background_xdist_run_keeps_artifacts(tmp_path: Path) -> None:
    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "256M"], check=True)
    (tmp_path / "test_cut.py").write_text(TESTS)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kolapy.cli", "run", "cut.*", "-j", "2",
         f"--tests={tmp_path / 'test_cut.py'}", f"--nestos-image={blank}",
         f"--output-dir={out}", "--live=plain"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TMPDIR": str(scratch)}, preexec_fn=_as_background_job,
    )
    try:
        deadline = time.monotonic() + 180
        while _booting(out) < 2:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the machines never started booting"
            time.sleep(0.2)
        time.sleep(3)  # QEMU is up and waiting for a guest that never comes
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        text = proc.communicate(timeout=120)[0]
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # xdist SIGKILLs a worker that has not exited 10 s after it was asked to
    assert took < 9, (took, text[-3000:])
    for name in ("cut.one", "cut.two"):
        (machine_dir,) = (out / name).iterdir()
        for artifact in ("console.txt", "journal.txt", "qemu-stderr.txt"):
            assert (machine_dir / artifact).is_file(), (machine_dir, artifact)
    # the work dirs (kolapy-<worker>-*) are gone; the memory ledger (kolapy-memory-*) stays
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("kolapy-gw")]
