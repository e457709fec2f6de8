"""Faults injected into booted machines, all in ONE `kolapy run -j 2` of tests/faults/kola/.

CI cost: one boot per xdist worker (a template each), every other machine a
restored clone (~5 s); about 5 minutes on an idle host.  The run sees the
reference image read-only (a private mount namespace binds its directory
read-only), so every boot also proves fault 17.  docs/reliability.md has the table.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.faults.harness import FAILED, Sandbox, junit_case, sha256

pytestmark = pytest.mark.vm

KOLA_TESTS = Path(__file__).parent / "kola" / "faults_kola.py"

# kola test -> (JUnit element: error = infrastructure, failure = the test's own, None = pass,
#               what its message names)
EXPECTED: dict[str, tuple[str | None, str]] = {
    "fault.cmd-timeout": ("error", "'sleep 600' did not finish within"),
    "fault.ssh-cut": ("error", "SSH connection closed during command"),
    "fault.console-flood": (None, ""),
    "fault.huge-output": (None, ""),
    "fault.qemu-killed": ("error", "QEMU exited with code -9"),
    "fault.panic": ("error", "console shows 'Kernel panic - not syncing'"),
    "fault.guest-frozen": ("error", "Timeout opening channel"),
    "fault.reboot-behind": ("error", "SSH"),
    "fault.clock": (None, ""),
}


@pytest.fixture(scope="module")
def faulted_run(ref_image: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Sandbox, subprocess.CompletedProcess[str], str, str]:
    box = Sandbox(tmp_path_factory.mktemp("boot-faults"))
    before = sha256(ref_image)
    d = ref_image.parent
    read_only = (f"mount --bind {d} {d}; mount -o remount,bind,ro {d}; "
                 f"! touch {d}/.kolapy-rw-probe 2>/dev/null")
    r = box.run("fault.*", f"--tests={KOLA_TESTS}", f"--nestos-image={ref_image}", "-j", "2",
                prefix=("unshare", "-m", "sh", "-ec", f"{read_only}\nexec \"$@\"", "sh"),
                timeout=1800)
    return box, r, before, sha256(ref_image)


def test_each_fault_has_its_class(faulted_run) -> None:  # type: ignore[no-untyped-def]
    box, r, _, _ = faulted_run
    assert r.returncode == FAILED, (r.stdout + r.stderr)[-4000:]
    assert "Traceback" not in r.stderr, r.stderr[-4000:]
    for name, (kind, needle) in EXPECTED.items():
        case = junit_case(box.out, name)
        text = ET.tostring(case, encoding="unicode")[:3000]
        if kind is None:
            assert case.find("error") is None and case.find("failure") is None, text
            continue
        other = "failure" if kind == "error" else "error"
        found = case.find(kind)
        assert found is not None and case.find(other) is None, text
        assert needle in (found.get("message", "") + (found.text or "")), text


def test_evidence_is_kept(faulted_run) -> None:  # type: ignore[no-untyped-def]
    box, _, _, _ = faulted_run
    for name in EXPECTED:
        machines = junit_case(box.out, name).find("properties/property[@name='kola.machines']")
        assert machines is not None, name
        for machine in machines.get("value", "").split():
            # A shared machine keeps its files under the first kola test that used it.
            dirs = list(box.out.glob(f"*/{machine}"))
            assert dirs, f"no artifact dir for {name} ({machine})"
            kept = {p.name for p in dirs[0].iterdir()}
            assert {"console.txt", "journal.txt", "qemu-stderr.txt"} <= kept, (name, kept)
    panic = "".join(p.read_text() for p in (box.out / "fault.panic").glob("*/console.txt"))
    assert "Kernel panic - not syncing" in panic
    flood = "".join(p.read_text() for p in box.out.glob("*/*/console.txt"))
    assert "FLOOD-FLOOD" in flood
    # The clock jumped to 2001, then 2100: the test's journal slice still has both lines.
    clock = junit_case(box.out, "fault.clock").findtext("system-err") or ""
    assert "FAULT-CLOCK-2001" in clock and "FAULT-CLOCK-2100" in clock, clock[-2000:]
    report = json.loads((box.out / "reports" / "report.json").read_text())
    assert {t["name"] for t in report["tests"]} == set(EXPECTED)


def test_nothing_left_and_image_untouched(faulted_run) -> None:  # type: ignore[no-untyped-def]
    box, _, before, after = faulted_run
    box.assert_clean()
    assert after == before
