"""`kolapy run 'ignition.*' -j 2` on the reference image: every test passes (kargs may
SKIP naming the missing helper), the shared tests use one machine, and each expected
boot failure is reported from the emergency within 60 s, with the failing stage's
journal line in the report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.xdist_group("ignition")]

SHARED = {"ignition.files", "ignition.passwd", "ignition.systemd", "ignition.hostname",
          "ignition.kargs"}
EXPECTED = SHARED | {"ignition.storage", "ignition.once", "ignition.remote", "ignition.failure"}
FAILURE_CASES = {"unwritable-path": "files", "unreachable-remote": "fetch", "bad-hash": "fetch"}
DETECTED = re.compile(r"emergency detected (\d+(?:\.\d+)?) s after the failure")


def _tail(r: subprocess.CompletedProcess[str]) -> str:
    return (f"rc={r.returncode}\n--- stdout ---\n{r.stdout[-6000:]}\n"
            f"--- stderr ---\n{r.stderr[-3000:]}")


def test_kolapy_run_ignition_suite(ref_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "kolapy.cli", "run", "ignition.*", "-j", "2",
         f"--nestos-image={ref_image}", f"--output-dir={out}"],
        capture_output=True, text=True, timeout=3000,
    )
    assert r.returncode == 0, _tail(r)
    report = json.loads((out / "reports/report.json").read_text())
    tests = {t["name"]: t for t in report["tests"]}
    assert set(tests) >= EXPECTED, sorted(tests)

    for name in EXPECTED:
        t = tests[name]
        if t["result"] == "SKIP":
            # Only a named missing prerequisite may skip, and only where it can be missing.
            assert name == "ignition.kargs", (name, t["output"])
            assert "ignition-kargs-helper" in t["output"], t["output"]
            continue
        assert t["result"] == "PASS", (name, t["result"], t["output"][-3000:])

    shared = {m for n in SHARED if tests[n]["result"] == "PASS" for m in tests[n]["machines"]}
    assert len(shared) == 1, f"the non-rebooting tests used {sorted(shared)}, not one machine"

    for case, stage in FAILURE_CASES.items():
        sub = tests[f"ignition.failure/{case}"]
        assert sub["result"] == "PASS", (case, sub["output"])
        note = sub["output"]
        assert f"expected boot failure in Ignition stage {stage}: " in note, (case, note)
        assert f"ignition-{stage}.service" in note, (case, note)  # the journal line
        seconds = DETECTED.search(note)
        assert seconds is not None, (case, note)
        assert float(seconds.group(1)) < 60.0, (case, note)
