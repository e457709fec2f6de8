"""`kolapy run basic` and `pytest --pyargs kolapy.suites.basic` on the reference image."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.vm.conftest import sha256

pytestmark = pytest.mark.vm

BASIC_CHECKS = {
    "basic/ssh-port",
    "basic/dbus-perms",
    "basic/services-active",
    "basic/read-only-usr",
    "basic/useradd",
    "basic/machine-id",
    "basic/root-grows",
}


def _tail(r: subprocess.CompletedProcess[str]) -> str:
    return (
        f"rc={r.returncode}\n--- stdout ---\n{r.stdout[-4000:]}\n--- stderr ---\n{r.stderr[-3000:]}"
    )


def test_kolapy_run_basic(ref_image: Path, tmp_path: Path) -> None:
    before = sha256(ref_image)
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "kolapy.cli",
            "run",
            "basic",
            f"--nestos-image={ref_image}",
            f"--output-dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0, _tail(r)

    cases = {
        tc.get("name"): tc for tc in ET.parse(out / "reports/junit.xml").getroot().iter("testcase")
    }
    assert set(cases) >= BASIC_CHECKS, sorted(cases)
    for name in BASIC_CHECKS:
        tc = cases[name]
        assert tc.find("failure") is None and tc.find("error") is None, name
        # each check carries ITS slice: the end marker of its own name, no other's
        journal = tc.findtext("system-err") or ""
        assert f"kolapy: end of {name}" in journal, (name, journal[-2000:])
        others = BASIC_CHECKS - {name}
        assert not any(f"kolapy: end of {o}\n" in journal for o in others), name
    assert "kolapy-user" in (cases["basic/useradd"].findtext("system-err") or "")

    report = json.loads((out / "reports/report.json").read_text())
    basic = next(t for t in report["tests"] if t["name"] == "basic")
    assert basic["result"] == "PASS"
    assert len(basic["machines"]) == 1, basic  # all checks on ONE machine
    machine_dir = out / "basic" / basic["machines"][0]
    assert (machine_dir / "console.txt").stat().st_size > 0
    assert (machine_dir / "journal.txt").stat().st_size > 0
    assert sha256(ref_image) == before, "the base image was written"


def test_pytest_pyargs_basic_parallel(ref_image: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--nestos-image={ref_image}",
            "-n",
            "2",
            "--pyargs",
            "kolapy.suites.basic",
            f"--kola-output-dir={tmp_path / 'out'}",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
    )
    assert r.returncode == 0, _tail(r)
    assert "7 passed" in r.stdout, _tail(r)
