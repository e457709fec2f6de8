"""`kolapy run basic --arch aarch64` on the arm64 reference image (TCG on x86_64 hosts).

One boot only: the whole `basic` test shares one machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.enums import Arch

# The emulated arm64 guest and the two-machine cluster are the heaviest VM loads:
# one xdist worker runs them one after the other, so they never starve each other.
pytestmark = [pytest.mark.vm, pytest.mark.xdist_group("heavy-vm")]


@pytest.fixture(scope="module")
def arm_image() -> Path:
    """The arm64 reference image (built on first use; file-locked across workers)."""
    from kolapy.refimage import ensure_image

    return ensure_image(Arch.AARCH64)


def _tail(r: subprocess.CompletedProcess[str]) -> str:
    return (
        f"rc={r.returncode}\n--- stdout ---\n{r.stdout[-4000:]}\n--- stderr ---\n{r.stderr[-3000:]}"
    )


def test_kolapy_run_basic_aarch64(arm_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # No --nestos-image: `kolapy run` must pick the arm64 reference image by itself.
    r = subprocess.run(
        [sys.executable, "-m", "kolapy.cli", "run", "basic", "--arch", "aarch64",
         f"--output-dir={out}"],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0, _tail(r)

    report = json.loads((out / "reports/report.json").read_text())
    basic = next(t for t in report["tests"] if t["name"] == "basic")
    assert basic["result"] == "PASS", basic
    assert len(basic["machines"]) == 1, basic
    console = (out / "basic" / basic["machines"][0] / "console.txt").read_text(errors="replace")
    # The kernel that booted is the arm64 one, on the PL011 console.
    assert "ttyAMA0" in console, console[-2000:]
    ignition = json.loads((out / "basic" / basic["machines"][0] / "ignition.json").read_text())
    assert ignition["ignition"]["version"].startswith("3.")
