"""`kolapy run basic` and `pytest --pyargs kolapy.suites.basic` on the reference image."""

from __future__ import annotations

import json
import re
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
    """`kolapy run basic`, typed as a kola user types it (issue 19: kola's option spellings)."""
    before = sha256(ref_image)
    out = tmp_path / "out"
    # kola's command line with `kola` replaced; -j 2 still boots one machine (basic's
    # checks share it), so this costs no more than `kolapy run basic` did.
    kola_line = ["run", "-p", "qemu", "-b", "nestos", "--qemu-image", str(ref_image),
                 "--qemu-firmware", "uefi", "--qemu-memory", "4096", "--qemu-size", "10G",
                 "-j", "2", "--output-dir", str(out), "basic"]
    r = subprocess.run(
        [sys.executable, "-m", "kolapy.cli", *kola_line],
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
    # The machine's boot is in the first testcase that used it (kernel banner on the
    # console, kernel messages in the journal), and the parent `basic` carries its
    # checks' slices: no testcase is without logs (at least its journal slice; a check
    # that wrote nothing to the serial console has an empty console slice).
    with_banner = [n for n in BASIC_CHECKS
                   if "Linux version" in (cases[n].findtext("system-out") or "")]
    assert len(with_banner) == 1, with_banner
    assert "Linux version" in (cases[with_banner[0]].findtext("system-err") or "")
    assert "Linux version" in (cases["basic"].findtext("system-out") or "")
    for name, tc in cases.items():
        assert f"kolapy: end of {name}" in (tc.findtext("system-err") or "") or (
            name == "basic"), f"{name}: no journal slice"
    assert "kolapy: end of basic/root-grows" in (cases["basic"].findtext("system-err") or "")

    report = json.loads((out / "reports/report.json").read_text())
    basic = next(t for t in report["tests"] if t["name"] == "basic")
    assert basic["result"] == "PASS"
    assert len(basic["machines"]) == 1, basic  # all checks on ONE machine
    machine_dir = out / "basic" / basic["machines"][0]
    assert (machine_dir / "console.txt").stat().st_size > 0
    assert (machine_dir / "journal.txt").stat().st_size > 0
    # kola's options took effect: UEFI, 4 GiB of memory, a 10 GiB disk.
    props = json.loads((out / "properties.json").read_text())
    assert props["firmware"] == "uefi", props
    console = (machine_dir / "console.txt").read_text(errors="replace")
    total_k = re.search(r"Memory: \d+K/(\d+)K available", console)
    assert total_k and int(total_k.group(1)) > 3.5 * 2**20, total_k
    assert "(10.7 GB/10.0 GiB)" in console

    # the page people open: the seven checks, one machine, each check drawn on its lane
    html = (out / "reports/report.html").read_text()
    counts = dict(re.findall(r'data-count="(\w+)"><b>([^<]+)</b>', html))
    assert (counts["PASS"], counts["FAIL"], counts["ERROR"]) == ("7", "0", "0"), counts
    assert re.findall(r'<g class="lane" data-machine="([^"]+)"', html) == basic["machines"]
    assert html.count('class="seg seg-test res-passed"') == len(BASIC_CHECKS)
    assert all(f'id="t-{n.replace("/", "-")}"' in html for n in BASIC_CHECKS)
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
