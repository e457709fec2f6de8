"""`kolapy run 'podman.*' 'docker.*' 'isula.*' -j 2` on the reference image, plus a planted fault.

ONE run (CI cost): the container suites and one planted test that removes podman's
test image before the workflow.  Expected: every podman.* and docker.* PASS,
isula.* SKIP naming the binary (the reference image has no isula), the planted
test FAIL with podman's own error in its report, and the only failure is the plant.
Non-exclusive tests share one machine; exclusive ones get their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

PLANTED = '''
from kolapy import kola
from kolapy.containers.engines import PODMAN
from kolapy.containers.guest import EngineOnGuest
from kolapy.containers.ignition import container_ignition
from kolapy.containers.workflow import run_workflow


@kola(name="plant.podman-image-removed", exclusive=False, ignition=container_ignition())
def test_image_removed(machine):
    eg = EngineOnGuest(machine, PODMAN)
    eg.load_image()
    eg.ok("rmi", "-f", eg.image)          # the planted fault
    run_workflow(machine, PODMAN, load=False)
'''

PODMAN = {"podman.base", "podman.workflow", "podman.network-single", "podman.rootless",
          "podman.volume", "podman.registry"}
DOCKER = {"docker.base", "docker.workflow", "docker.network", "docker.volume",
          "docker.registry"}
ISULA = {"isula.base", "isula.workflow"}
EXCLUSIVE = {"docker.workflow", "docker.network", "podman.network-single", "isula.workflow"}


def _tail(r: subprocess.CompletedProcess[str]) -> str:
    return f"rc={r.returncode}\n{r.stdout[-6000:]}\n--- stderr ---\n{r.stderr[-3000:]}"


def test_container_suites_and_planted_fault(ref_image: Path, tmp_path: Path) -> None:
    planted = tmp_path / "test_planted_containers.py"
    planted.write_text(PLANTED)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "kolapy.cli", "run", "podman.*", "docker.*", "isula.*",
         "plant.*", f"--tests={planted}", "-j", "2", f"--nestos-image={ref_image}",
         f"--output-dir={out}"],
        capture_output=True, text=True, timeout=3000,
    )
    check_results(out, r)


def check_results(out: Path, r: subprocess.CompletedProcess[str]) -> None:
    """Everything the run must show (separate so a manual run's output can be checked)."""
    report = json.loads((out / "reports/report.json").read_text())
    by_name = {t["name"]: t for t in report["tests"]}
    summary = {n: (t["result"], round(t["duration"] / 1e9)) for n, t in sorted(by_name.items())}
    print(f"results: {summary}")
    assert set(by_name) == PODMAN | DOCKER | ISULA | {"plant.podman-image-removed"}, summary

    for name in sorted(PODMAN | DOCKER):
        assert by_name[name]["result"] == "PASS", (name, by_name[name]["output"][-3000:])
    for name in sorted(ISULA):
        assert by_name[name]["result"] == "SKIP", (name, by_name[name])
        assert "image has no isula" in by_name[name]["output"], by_name[name]["output"]

    plant = by_name["plant.podman-image-removed"]
    assert plant["result"] == "FAIL", plant
    # podman's own error names the missing image (it tries to pull it, or says "not known")
    for needle in ("command:", "podman run -d --name kolapy-wf-podman-web",
                   "exit code: 125", "Error: ", "localhost/kolapy/busybox:latest",
                   "engine journal since the command started"):
        assert needle in plant["output"], (needle, plant["output"][-3000:])
    # the plant is the only failure: without it the run exits 0
    assert r.returncode == 1, _tail(r)
    assert [n for n, t in by_name.items() if t["result"] == "FAIL"] == [plant["name"]]

    # sharing as declared: every non-exclusive test on ONE machine, exclusive ones alone
    booted = {n: set(t["machines"]) for n, t in by_name.items() if t["machines"]}
    shared = set().union(*(m for n, m in booted.items() if n not in EXCLUSIVE))
    assert len(shared) == 1, booted
    for name in EXCLUSIVE & booted.keys():
        assert booted[name].isdisjoint(shared), (name, booted)
        others = EXCLUSIVE - {name}
        assert all(booted[name].isdisjoint(booted.get(o, set())) for o in others), booted

    junit = ET.parse(out / "reports/junit.xml").getroot()
    cases = {tc.get("name") for tc in junit.iter("testcase")}
    assert cases >= PODMAN | DOCKER | ISULA, sorted(cases)
    # the registry test kept the registry's log among its artifacts
    assert list(out.glob("podman.registry/hostsvc/registry.log")), sorted(out.glob("*/*"))
