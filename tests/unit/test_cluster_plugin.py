"""cluster_size > 1 through the plugin, with fake machines (no VM)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import json, os
import pytest
from kolapy.pool import MachinePool

class FakeMachine:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.started = False
    def start(self):
        self.started = True
        with open(os.environ["BOOT_LOG"], "a") as f:
            nics = [[n.mac, n.address] for n in self.spec.private_nics]
            ign = self.spec.ignition.to_dict() if self.spec.ignition else None
            f.write(json.dumps({"name": self.name, "nics": nics, "ignition": ign}) + "\\n")
    def wait_ready(self):
        assert self.started
    def log_mark(self):
        return 0
    def logs_since(self, mark):
        return f"console of {self.name}", ""
    def succeed(self, cmd):
        return ""
    def stop(self):
        with open(os.environ["BOOT_LOG"], "a") as f:
            f.write(json.dumps({"stopped": self.name}) + "\\n")
    def write_artifacts(self, d):
        pass
    def ssh_command(self):
        return f"ssh {self.name}"

def fake_new_machine(self, spec, artifact_name):
    self._serial += 1
    from dataclasses import replace
    return FakeMachine(replace(spec, name=f"{self.worker}-{self._serial}"))

MachinePool._new_machine = fake_new_machine
MachinePool.boot_or_restore = MachinePool.boot  # fakes cannot be saved and restored
"""

TESTS = """
from kolapy import kola

pytestmark = kola(name="trio", cluster_size=3)

def test_members(cluster):
    assert len(cluster) == 3
    assert len({m.name for m in cluster.machines}) == 3
    assert cluster.addresses == ["10.200.0.11", "10.200.0.12", "10.200.0.13"]

def test_machine_is_the_first_member(machine, cluster):
    assert machine is cluster.machines[0]
"""

SINGLE = """
from kolapy import kola

@kola(name="single")
def test_single(cluster, machine):
    assert list(cluster) == [machine]
"""


@pytest.fixture
def image(tmp_path: Path) -> Path:
    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    return img


def _run(pytester: pytest.Pytester, image: Path, tmp_path: Path, monkeypatch, tests: str,
         single: str = ""):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cluster=tests)
    if single:
        pytester.makepyfile(test_single=single)
    log = tmp_path / "boots.jsonl"
    monkeypatch.setenv("BOOT_LOG", str(log))
    out = tmp_path / "out"
    result = pytester.runpytest_subprocess(
        f"--nestos-image={image}", f"--kola-output-dir={out}", "-p", "no:cacheprovider"
    )
    events = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return result, events, out


def test_cluster_boots_its_members_once_on_one_private_net(
    pytester: pytest.Pytester, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, events, out = _run(pytester, image, tmp_path, monkeypatch, TESTS, SINGLE)
    result.assert_outcomes(passed=3)
    boots = [e for e in events if "nics" in e]
    trio = [b for b in boots if b["nics"]]
    # one cluster of three for both subtests of "trio", one plain machine for "single"
    assert len(trio) == 3 and len(boots) == 4
    assert len({b["nics"][0][0] for b in trio}) == 3  # distinct MACs
    for b in trio:
        units = [u["name"] for u in b["ignition"]["systemd"]["units"]]
        assert "kolapy-privnet.service" in units, units
    stopped = {e["stopped"] for e in events if "stopped" in e}
    assert {b["name"] for b in boots} == stopped  # everyone stopped at the end

    report = json.loads((out / "reports" / "report.json").read_text())
    by_name = {t["name"]: t for t in report["tests"]}
    assert len(by_name["trio"]["machines"]) == 3
    assert by_name["single"]["machines"] == [next(b["name"] for b in boots if not b["nics"])]


def test_cluster_of_a_shared_test_is_a_collection_error(
    pytester: pytest.Pytester, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = """
from kolapy import kola

@kola(name="badpair", cluster_size=2, exclusive=False)
def test_x(cluster):
    pass
"""
    result, events, _ = _run(pytester, image, tmp_path, monkeypatch, bad)
    assert result.ret in (1, 2)
    text = result.stdout.str() + result.stderr.str()
    assert "test_x" in text and "cluster_size" in text
    assert events == []
