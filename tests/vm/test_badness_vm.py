"""A kernel oops planted on a real VM's console fails the test that caused it, not others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

KOLA_TESTS = '''
from kolapy import kola


@kola(name="plant.before", exclusive=False)
def test_before(machine):
    machine.succeed("true")


@kola(name="plant.oops", exclusive=False)
def test_oops(machine):
    # printk at KERN_WARNING reaches the serial console (and the journal)
    machine.succeed("echo '<4>Oops: 0002 [#1] planted by kolapy' | sudo tee /dev/kmsg")


@kola(name="plant.after", exclusive=False)
def test_after(machine):
    machine.succeed("true")
'''


def test_planted_oops_fails_only_its_test(ref_image: Path, tmp_path: Path) -> None:
    (tmp_path / "test_plant.py").write_text(KOLA_TESTS)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--nestos-image={ref_image}", f"--kola-output-dir={out}",
         str(tmp_path / "test_plant.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((out / "reports" / "report.json").read_text())
    by_name = {t["name"]: t for t in report["tests"]}
    assert by_name["plant.oops"]["result"] == "FAIL", by_name["plant.oops"]
    assert "planted by kolapy" in by_name["plant.oops"]["output"]
    assert by_name["plant.before"]["result"] == "PASS", by_name["plant.before"]["output"]
    assert by_name["plant.after"]["result"] == "PASS", by_name["plant.after"]["output"]
    # all three shared one machine, and the oops is in that machine's console log
    machines = {m for t in report["tests"] for m in t["machines"]}
    assert len(machines) == 1
    (console,) = out.glob("*/*/console.txt")
    assert "planted by kolapy" in console.read_text(errors="replace")
