"""kola external tests on the reference image: verdicts, selection, bad input.

The passing features (configs, data, kargs, reboots, sharing) are kolapy's own
``tests_external/``, which a plain ``pytest`` runs (root conftest.py).  Here a
tree of tests that must FAIL runs on ONE shared machine (a single boot), and the
bad-input cases are refused before anything boots.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

# name -> (script, expected result, text the failure reason must contain)
CASES = {
    "pass": ('echo "ok pass"', "PASS", ""),
    "fail-exit": ('echo "failing on purpose"; exit 3', "FAIL", "exited with status 3"),
    "killed": ("kill -KILL $$", "FAIL", "killed by signal 9 (SIGKILL)"),
    "timeout": ("## kola:\n##   exclusive: false\n##   timeoutMin: 1\nsleep 600", "FAIL",
                "timed out after 1 min"),
}
GATED = {
    "arch-gated": ('# kola: {"architectures": "s390x ppc64le", "exclusive": false}\nexit 1',
                   "architecture x86_64 not in [s390x, ppc64le]"),
    "required-tag": ('# kola: {"requiredTag": "selftest-only", "exclusive": false}\nexit 1',
                     "requires tag 'selftest-only'"),
}


def _tree(root: Path, tests: dict[str, str]) -> Path:
    for name, body in tests.items():
        exe = root / "tests" / "kola" / name / "test.sh"
        exe.parent.mkdir(parents=True)
        header = "" if body.startswith(("#", "##")) else '# kola: {"exclusive": false}\n'
        exe.write_text(f"#!/bin/bash\n{header}{body}\n")
        exe.chmod(0o755)
    return root


def _kolapy(*args: str, cwd: Path, timeout: float = 3000) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kolapy.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_failures_are_reported_with_the_reason(ref_image: Path, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "selftest", {
        **{n: body for n, (body, _, _) in CASES.items()},
        **{n: body for n, (body, _) in GATED.items()},
    })
    out = tmp_path / "out"
    # --tag external: only external tests (kola tags every one), not the built-in suites;
    # no typed pattern, so requiredTag is judged on --tag alone
    proc = _kolapy("run", "-E", str(tree), "--tag", "external", f"--nestos-image={ref_image}",
                   "--output-dir", str(out), "--live", "plain", "--show-skipped", cwd=tmp_path)
    log = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 1, log
    report = json.loads((out / "reports" / "report.json").read_text())
    by_name = {t["name"]: t for t in report["tests"] if t["name"].startswith("ext.")}
    for name, (_, result, reason) in CASES.items():
        got = by_name[f"ext.selftest.{name}"]
        assert got["result"] == result, (name, got)
        assert reason in got["output"], (name, got["output"][-2000:])
    # the journal of the test's unit is its output
    assert "failing on purpose" in by_name["ext.selftest.fail-exit"]["output"]
    assert "ok pass" in by_name["ext.selftest.pass"]["output"]
    # gated tests never ran, and the run says why
    for name, (_, why) in GATED.items():
        assert f"ext.selftest.{name}" not in by_name
        assert f"deselected ext.selftest.{name}: {why}" in proc.stdout, log
    # four non-exclusive tests, one machine
    machines = {m for t in by_name.values() for m in t["machines"]}
    assert len(machines) == 1, by_name


def test_unknown_metadata_key_is_exit_2(ref_image: Path, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "badkey", {"x": '# kola: {"exclusive": false, "colour": "blue"}'})
    proc = _kolapy("run", "-E", str(tree), f"--nestos-image={ref_image}", cwd=tmp_path,
                   timeout=600)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if "kolapy: error:" in ln]
    assert "unknown kola metadata key 'colour'" in line and "badkey/tests/kola/x/test.sh" in line
    assert not list(tmp_path.glob("**/console.txt"))  # nothing booted


def test_unsupported_butane_field_is_exit_2(ref_image: Path, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "badbu", {"x": 'echo never'})
    (tree / "tests" / "kola" / "x" / "config.bu").write_text(
        "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/x\n"
        "      contents:\n        inline: x\n      permissions: 420\n")
    proc = _kolapy("run", "-E", str(tree), f"--nestos-image={ref_image}", cwd=tmp_path,
                   timeout=600)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if "kolapy: error:" in ln]
    assert "storage.files[0].permissions" in line and "config.bu" in line
