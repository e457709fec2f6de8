"""`kolapy run ostree.upgrade-rollback` and `kolapy run-upgrade` on the x86_64 reference image.

CI cost: upgrade-rollback = 1 boot + 2 reboots; run-upgrade = 1 boot + 2 reboots;
the missing-ref FAIL is detected on the host before any boot (a served directory);
"not an ostree repo" (exit 2 before boot) is in tests/unit/test_updates_upgrade.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm


def _kolapy(*args: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kolapy.cli", *args, "--live=plain"],
        capture_output=True, text=True, timeout=timeout,
    )


def _tail(r: subprocess.CompletedProcess[str]) -> str:
    return (f"rc={r.returncode}\n--- stdout ---\n{r.stdout[-4000:]}"
            f"\n--- stderr ---\n{r.stderr[-3000:]}")


def _entry(out: Path, name: str) -> dict:
    report = json.loads((out / "reports/report.json").read_text())
    return next(t for t in report["tests"] if t["name"] == name)


def _boot_files(machine_dir: Path) -> list[tuple[str, str]]:
    """(console, journal) of each boot, from console.boot<N>.txt / journal.boot<N>.txt."""
    n = len(list(machine_dir.glob("console.boot*.txt")))
    return [
        ((machine_dir / f"console.boot{i}.txt").read_text(),
         (machine_dir / f"journal.boot{i}.txt").read_text())
        for i in range(1, n + 1)
    ]


def _assert_three_boots(machine_dir: Path) -> None:
    """console.boot<N>/journal.boot<N> for the first boot and each reboot.

    A machine restored from a saved one booted before it was restored: its first
    console slice may hold no kernel banner; every reboot's holds exactly one.
    The journal files are cut by _BOOT_ID: each boot before the last ends with the
    reboot request, each after the first has its kernel's banner.
    """
    boots = _boot_files(machine_dir)
    assert len(boots) == 3, sorted(p.name for p in machine_dir.iterdir())
    for i, (console, journal) in enumerate(boots, start=1):
        banners = len(re.findall(r"Linux version \d", console))
        assert banners == 1 or (i == 1 and banners == 0), f"boot {i}: {banners} kernel banners"
        assert journal.strip(), f"boot {i} has an empty journal"
        assert ("COMMAND=/usr/bin/systemctl reboot" in journal) == (i < 3), f"journal boot {i}"
        if i > 1:
            assert "Linux version" in journal, f"journal boot {i} has no kernel banner"


def test_run_ostree_upgrade_rollback(ref_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _kolapy("run", "ostree.upgrade-rollback", f"--nestos-image={ref_image}",
                f"--output-dir={out}")
    assert r.returncode == 0, _tail(r)
    entry = _entry(out, "ostree.upgrade-rollback")
    assert entry["result"] == "PASS", entry
    _assert_three_boots(out / "ostree.upgrade-rollback" / entry["machines"][0])


def test_run_upgrade_and_missing_ref(ref_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _kolapy("run-upgrade", f"--nestos-image={ref_image}", f"--output-dir={out}")
    assert r.returncode == 0, _tail(r)
    result = json.loads((out / "upgrade.basic/upgrade.json").read_text())
    parent, target = result["parent"], result["target"]
    assert parent["commit"] != target["commit"] and parent["version"] != target["version"]
    manifest = json.loads((ref_image.parent / "manifest.json").read_text())
    assert parent["commit"] == manifest["ostree_commit"]
    assert len(result["reboots_s"]) == 2 and result["result"] == "PASS"
    for key in ("parent", "target"):  # the report shows both
        assert f"{key}: {result[key]['commit']} version {result[key]['version']}" in r.stderr
    entry = _entry(out, "upgrade.basic")
    assert entry["result"] == "PASS", entry
    _assert_three_boots(out / "upgrade.basic" / entry["machines"][0])

    # The same (cached, served) repo with a ref it does not have: a FAIL naming the ref.
    repo = ref_image.parent / "upgrade-repo" / "repo"
    bad = tmp_path / "bad"
    r = _kolapy("run-upgrade", f"--nestos-image={ref_image}", f"--output-dir={bad}",
                f"--upgrade-repo={repo}", "--upgrade-ref=kolapy/no-such-ref", timeout=900)
    assert r.returncode == 1, _tail(r)
    entry = _entry(bad, "upgrade.basic")
    assert entry["result"] == "FAIL", entry
    assert "'kolapy/no-such-ref' does not exist" in json.dumps(entry), entry
