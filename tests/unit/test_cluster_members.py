"""Per-member Ignition configs of a cluster (``@kola(member_ignition=fn)``), with fakes (no VM)."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from kolapy.config import RunConfig
from kolapy.errors import BadInputError
from kolapy.ignition import Ignition
from kolapy.machine.cluster import config_digest, member_addresses, member_configs
from kolapy.machine.restore import restorable
from kolapy.machine.spec import MachineSpec
from kolapy.meta import MetadataError, kola
from kolapy.pool import MachinePool
from kolapy.scheduling import restore_digests, share_key, spec_digest, template_digest

pytest_plugins = ["pytester"]

CONFTEST = """
import json, os
from kolapy.pool import MachinePool

class FakeMachine:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
    def start(self):
        with open(os.environ["BOOT_LOG"], "a") as f:
            f.write(json.dumps({"name": self.name, "ignition": self.spec.ignition.to_dict()})
                    + "\\n")
    def wait_ready(self):
        pass
    def log_mark(self):
        return 0
    def logs_since(self, mark):
        return "", ""
    def stop(self):
        pass
    def write_artifacts(self, d):
        pass

def fake_new_machine(self, spec, artifact_name, **kw):
    from dataclasses import replace
    from kolapy.report.outdir import safe_component
    self._serial += 1
    m = FakeMachine(replace(spec, name=f"{self.worker}-{self._serial}"))
    m.artifact_dir = self.output_dir / safe_component(artifact_name) / m.name
    return m

MachinePool._new_machine = fake_new_machine
"""

PER_MEMBER = """
from kolapy import Ignition, kola

def own(index, addresses):
    return Ignition().add_file("/etc/kolapy-member", f"{index} {addresses[index]} {len(addresses)}")

pytestmark = kola(name="trio", cluster_size=3, member_ignition=own,
                  ignition=Ignition().add_file("/etc/common", "all"))

def test_members(cluster):
    assert cluster.addresses == ["10.200.0.11", "10.200.0.12", "10.200.0.13"]

def test_again(cluster):
    pass
"""

SAME = """
from kolapy import Ignition, kola

@kola(name="pair", cluster_size=2, ignition=Ignition().add_file("/etc/common", "all"))
def test_pair(cluster):
    pass
"""


@pytest.fixture
def image(tmp_path: Path) -> Path:
    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    return img


def _files(config: dict[str, Any]) -> dict[str, str]:
    """path -> contents of a config's data-URL files."""
    out = {}
    for f in config.get("storage", {}).get("files", []):
        head, _, data = f["contents"]["source"].partition(",")
        out[f["path"]] = (base64.b64decode(data).decode() if head.endswith(";base64")
                          else urllib.parse.unquote(data))
    return out


def _run(pytester: pytest.Pytester, image: Path, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch, tests: str) -> tuple[Any, list[dict[str, Any]], Path]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_members=tests)
    log = tmp_path / "boots.jsonl"
    monkeypatch.setenv("BOOT_LOG", str(log))
    out = tmp_path / "out"
    result = pytester.runpytest_subprocess(
        f"--nestos-image={image}", f"--kola-output-dir={out}", "-p", "no:cacheprovider")
    boots = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return result, boots, out


def test_each_member_boots_its_own_config_over_the_tests(
    pytester: pytest.Pytester, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, boots, out = _run(pytester, image, tmp_path, monkeypatch, PER_MEMBER)
    result.assert_outcomes(passed=2)
    assert len(boots) == 3  # one cluster for both subtests
    for i, boot in enumerate(boots):
        files = _files(boot["ignition"])
        assert files["/etc/kolapy-member"] == f"{i} 10.200.0.{11 + i} 3"
        assert files["/etc/common"] == "all"  # the test's config stays under the member's
        units = [u["name"] for u in boot["ignition"]["systemd"]["units"]]
        assert "kolapy-privnet.service" in units  # and the private network's fragment on top

    report = json.loads((out / "reports" / "report.json").read_text())
    by_name = {t["name"]: t for t in report["tests"]}
    members = by_name["trio"]["cluster_members"]
    assert sorted(members) == sorted(b["name"] for b in boots)
    for boot in boots:
        entry = members[boot["name"]]
        i = entry["member"]
        assert entry["address"] == f"10.200.0.{11 + i}"
        assert entry["ignition"] == f"trio/{boot['name']}/ignition.json"
        own = Ignition().add_file("/etc/common", "all").merge(
            Ignition().add_file("/etc/kolapy-member", f"{i} 10.200.0.{11 + i} 3"))
        assert entry["config_sha256"] == config_digest(own)
    assert len({m["config_sha256"] for m in members.values()}) == 3
    # the subtests' entries say the same
    assert by_name["trio/members"]["cluster_members"] == members


def test_by_default_every_member_has_the_same_config(
    pytester: pytest.Pytester, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, boots, out = _run(pytester, image, tmp_path, monkeypatch, SAME)
    result.assert_outcomes(passed=1)
    assert [_files(b["ignition"])["/etc/common"] for b in boots] == ["all", "all"]
    report = json.loads((out / "reports" / "report.json").read_text())
    (pair,) = [t for t in report["tests"] if t["name"] == "pair"]
    digests = {m["config_sha256"] for m in pair["cluster_members"].values()}
    assert digests == {config_digest(Ignition().add_file("/etc/common", "all"))}
    assert sorted(m["member"] for m in pair["cluster_members"].values()) == [0, 1]


@pytest.mark.parametrize(("body", "expected"), [
    ("def f(i, a):\n    raise ValueError('no config for ' + a[i])\n",
     "member_ignition(1, ['10.200.0.11', '10.200.0.12']) raised ValueError: no config for "
     "10.200.0.12"),
    ("def f(i, a):\n    return 42\n", "member_ignition(0, ...): invalid Ignition config"),
    ("def f(i, a):\n    return {'ignition': {'version': '3.0.0'},\n"
     "            'storage': {'files': [{'path': 'relative/x'}]}}\n", "member 0: "),
], ids=["raises", "not-a-config", "invalid-config"])
def test_a_bad_member_config_is_bad_input_before_any_boot(
    pytester: pytest.Pytester, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    body: str, expected: str,
) -> None:
    if "raise" in body:  # member 0 is fine, member 1 raises
        body = "def f(i, a):\n    if i == 0:\n        return None\n" + body.split("\n", 1)[1]
    tests = ("from kolapy import kola\n" + body +
             "\n@kola(name='bad', cluster_size=2, member_ignition=f)\n"
             "def test_x(cluster):\n    pass\n")
    result, boots, _ = _run(pytester, image, tmp_path, monkeypatch, tests)
    assert result.ret == 2
    text = result.stdout.str() + result.stderr.str()
    assert "test bad (" in text and expected in text, text
    assert boots == []


def test_member_ignition_needs_a_cluster_and_a_function() -> None:
    with pytest.raises(MetadataError, match=r"member_ignition.*cluster_size >= 2"):
        from kolapy.meta import build_meta

        build_meta({"name": "x", "member_ignition": lambda i, a: None}, "t.py::x")
    with pytest.raises(MetadataError, match=r"member_ignition.*expected a function"):
        kola(name="x", cluster_size=2, member_ignition={"ignition": {}})


def test_member_configs_get_the_clusters_addresses() -> None:
    seen: list[tuple[int, tuple[str, ...]]] = []

    def own(index: int, addresses: tuple[str, ...]) -> Any:
        seen.append((index, addresses))
        return {"ignition": {"version": "3.1.0"}} if index else None

    configs = member_configs(own, 2)
    assert seen == [(0, member_addresses(2)), (1, member_addresses(2))]
    assert member_addresses(2) == ("10.200.0.11", "10.200.0.12")
    assert [c.version for c in configs] == ["3.0.0", "3.1.0"]  # None is an empty config
    with pytest.raises(BadInputError, match=r"member_ignition\(0, "):
        member_configs(lambda i, a: 1 / 0, 2)


class _Fake:
    def __init__(self, spec: MachineSpec) -> None:
        self.spec, self.name = spec, spec.name

    def start(self) -> None:
        pass

    def wait_ready(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def write_artifacts(self, d: Path) -> None:
        pass


def test_members_with_own_configs_never_share_a_saved_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = member_configs(lambda i, a: Ignition().add_file("/etc/m", str(i)), 2)
    spec = MachineSpec(image=Path("/img.qcow2"), ignition=Ignition().add_file("/etc/c", "c"),
                       member_ignition=own)
    same = MachineSpec(image=Path("/img.qcow2"), ignition=Ignition().add_file("/etc/c", "c"))
    # the cluster's spec (its share key and xdist group) depends on the members' configs
    assert spec_digest(spec) != spec_digest(same)
    assert share_key("t", spec, exclusive=True, conflicts=False) != share_key(
        "t", same, exclusive=True, conflicts=False)

    pool = MachinePool(RunConfig(), tmp_path)
    made: list[MachineSpec] = []

    def fake_new(member: MachineSpec, artifact_name: str, name: str = "", **kw: Any) -> Any:
        made.append(member)
        return _Fake(member)

    monkeypatch.setattr(pool, "_new_machine", fake_new)
    cluster = pool.boot_cluster(spec, 2, "t")
    try:
        assert [_files(m.ignition.to_dict())["/etc/m"] for m in made] == ["0", "1"]
        assert all(m.member_ignition == () for m in made)  # a member is a single machine
        # members are never restored, and their specs could not share a template anyway
        assert all(restorable(m) for m in made)
        assert template_digest(made[0]) != template_digest(made[1])
        assert [m.cluster_member.index for m in cluster.machines] == [0, 1]
    finally:
        pool.stop(cluster)

    class Plan:
        def __init__(self, key: str, spec: MachineSpec, size: int) -> None:
            self.key, self.spec, self.denied = key, spec, None
            self.meta = type("M", (), {"flags": frozenset(), "cluster_size": size})()

    plans = [Plan("a", spec, 2), Plan("b", spec, 2), Plan("c", same, 2), Plan("d", same, 2)]
    assert restore_digests(plans) == set()


def test_a_cluster_spec_with_the_wrong_number_of_member_configs_boots_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kolapy.errors import InfraError

    pool = MachinePool(RunConfig(), tmp_path)
    monkeypatch.setattr(pool, "_new_machine", lambda *a, **k: pytest.fail("booted"))
    spec = MachineSpec(image=Path("/img.qcow2"), member_ignition=(Ignition(),))
    with pytest.raises(InfraError, match="1 member configs for a cluster of 2"):
        pool.boot_cluster(spec, 2, "t")
