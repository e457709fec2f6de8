"""Boot once, restore many: exclusive tests with one spec get pristine clones of a saved machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.conftest import sha256

pytestmark = pytest.mark.vm

KOLA_TESTS = '''
import time

from kolapy import kola


def check_pristine(machine, name):
    # Each clone starts from the saved machine: no other test's marker is there.
    leftovers = machine.succeed("ls /var/tmp/ | grep '^kolapy-marker-' || true").split()
    assert leftovers == [], f"{name} sees another test's files: {leftovers}"
    machine.succeed(f"touch /var/tmp/kolapy-marker-{name}")
    # The clock was set after the restore (the saved clock would lag behind).
    guest = float(machine.succeed("date +%s.%N"))
    assert abs(guest - time.time()) < 30, f"guest clock off by {guest - time.time():.0f} s"
    machine.succeed("systemctl is-system-running")
    print("boot_id", machine.boot_id)


@kola(name="restore.one")
def test_one(machine):
    check_pristine(machine, "one")


@kola(name="restore.two")
def test_two(machine):
    check_pristine(machine, "two")


@kola(name="restore.three")
def test_three(machine):
    check_pristine(machine, "three")
'''


def test_exclusive_tests_get_clones_of_one_saved_machine(ref_image: Path, tmp_path: Path) -> None:
    before = sha256(ref_image)
    (tmp_path / "test_restore_kola.py").write_text(KOLA_TESTS)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         f"--nestos-image={ref_image}", f"--kola-output-dir={out}",
         str(tmp_path / "test_restore_kola.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((out / "reports" / "report.json").read_text())
    tests = [t for t in report["tests"] if t["name"].startswith("restore.")]
    assert len(tests) == 3, report
    machines = [m for t in tests for m in t["machines"]]
    assert len(set(machines)) == 3, machines  # one machine each (exclusive)...
    templates = {src for t in tests for src in t.get("restored_from", {}).values()}
    assert len(templates) == 1, tests  # ...all restored from one saved machine
    # The saved machine's boot is kept with the run; the clones' logs with their tests.
    (template,) = templates
    assert (out / "_templates" / template / "console.txt").stat().st_size > 0
    for t in tests:
        (m,) = t["machines"]
        assert (out / t["name"] / m / "journal.txt").exists()
    # JUnit: each clone's testcase carries the saved machine's boot (it never booted).
    import xml.etree.ElementTree as ET

    cases = {c.get("name"): c for c in ET.parse(out / "reports/junit.xml").iter("testcase")}
    for t in tests:
        console = cases[t["name"]].findtext("system-out") or ""
        assert f"was restored from {template}" in console, t["name"]
        assert "Linux version" in console, t["name"]
        assert "Linux version" in (cases[t["name"]].findtext("system-err") or ""), t["name"]
    # Clones share the saved machine's boot (documented): one boot_id in all three.
    boot_ids = re.findall(r"boot_id ([0-9a-f-]{36})", proc.stdout)
    assert len(boot_ids) == 3 and len(set(boot_ids)) == 1, boot_ids
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sum(1 for e in events if e["event"] == "ready" and e.get("restored_from")) == 3
    assert sha256(ref_image) == before, "the base image was written"
