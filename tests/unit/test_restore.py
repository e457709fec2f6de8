"""Boot once, restore many: which machines get clones, and how the pool routes (no VM)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from kolapy.config import RunConfig
from kolapy.enums import Accel
from kolapy.errors import BootError
from kolapy.machine.platform import ResolvedFirmware, load_platform
from kolapy.machine.qemu_command import MachinePaths, QemuCommand
from kolapy.machine.restore import restorable
from kolapy.machine.spec import DiskSpec, MachineSpec
from kolapy.pool import TEMPLATES_DIR, MachinePool
from kolapy.scheduling import restore_digests, template_digest

SPEC = MachineSpec(image=Path("/img.qcow2"))


@dataclass
class Meta:
    flags: frozenset[str] = frozenset()
    cluster_size: int = 1


@dataclass
class Plan:
    key: str
    spec: MachineSpec = SPEC
    meta: Meta = field(default_factory=Meta)
    denied: str | None = None


def test_a_spec_two_machines_use_is_worth_a_template() -> None:
    plans = [Plan("kola-a"), Plan("kola-b")]
    assert restore_digests(plans) == {template_digest(SPEC)}


def test_each_worker_must_get_two_machines_of_the_spec() -> None:
    plans = [Plan(f"kola-{i}") for i in range(3)]
    assert restore_digests(plans, workers=3) == set()  # one each: a plain boot is cheaper
    assert restore_digests(plans + [Plan(f"kola-x{i}") for i in range(3)], workers=3) == {
        template_digest(SPEC)}


def test_subtests_of_one_machine_count_once() -> None:
    assert restore_digests([Plan("kola-a"), Plan("kola-a")]) == set()


def test_other_specs_flags_clusters_and_denied_are_left_out() -> None:
    other = replace(SPEC, memory_mib=4096)
    plans = [
        Plan("kola-a"),
        Plan("kola-b", spec=other),
        Plan("kola-c", meta=Meta(flags=frozenset({"fresh_boot"}))),
        Plan("kola-d", meta=Meta(cluster_size=2)),
        Plan("kola-e", denied="denylisted"),
    ]
    assert restore_digests(plans) == set()


def test_template_digest_ignores_the_image_path_only() -> None:
    assert template_digest(SPEC) == template_digest(replace(SPEC, image=Path("/other")))
    assert template_digest(SPEC) != template_digest(replace(SPEC, ignition={"a": 1}))


def test_clusters_and_extra_disks_are_not_restorable() -> None:
    assert restorable(SPEC) is None
    assert "disks" in (restorable(replace(SPEC, additional_disks=(DiskSpec(1.0),))) or "")
    assert "cluster" in (restorable(replace(SPEC, private_nics=("nic",))) or "")


def test_incoming_starts_qemu_waiting_for_the_saved_state() -> None:
    profile = load_platform(SPEC.arch)
    paths = MachinePaths.for_workdir(Path("/tmp/kolapy-w/m1"))
    plain = QemuCommand(SPEC, profile, Accel.TCG, paths, 2222, ResolvedFirmware(SPEC.firmware))
    clone = replace(plain, incoming="exec:cat /tmp/t/state.bin")
    assert "-incoming" not in plain.argv()
    argv = clone.argv()
    assert argv[argv.index("-incoming") + 1] == "exec:cat /tmp/t/state.bin"
    # Everything else is the same machine: a restore needs identical devices.
    assert [a for a in argv if a not in ("-incoming", "exec:cat /tmp/t/state.bin")] == plain.argv()


class RoutingPool(MachinePool):
    """Records what the pool decided instead of starting QEMU."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []

    def boot(self, spec: MachineSpec, artifact_name: str, **kw: Any) -> Any:
        self.calls.append(("boot", artifact_name))
        return object()

    def template(self, spec: MachineSpec, digest: str) -> Any:
        self.calls.append(("template", digest))
        return f"template-{digest}"

    def restore(self, template: Any, artifact_name: str) -> Any:
        self.calls.append(("restore", artifact_name))
        return object()


def test_pool_restores_only_planned_specs(tmp_path: Path) -> None:
    pool = RoutingPool(RunConfig(), tmp_path)
    pool.restore_digests = {template_digest(SPEC)}
    pool.acquire("kola-a", SPEC, "a")
    pool.acquire("kola-b", replace(SPEC, memory_mib=4096), "b")
    assert pool.calls == [("template", template_digest(SPEC)), ("restore", "a"), ("boot", "b")]


def test_no_restore_boots_everything(tmp_path: Path) -> None:
    pool = RoutingPool(RunConfig(restore=False), tmp_path)
    pool.restore_digests = {template_digest(SPEC)}
    pool.acquire("kola-a", SPEC, "a")
    assert pool.calls == [("boot", "a")]


class FailingTemplateMachine:
    name = "gw-tfail"

    def start(self) -> None:
        pass

    def wait_ready(self) -> None:
        raise BootError("no SSH")

    def stop(self) -> None:
        pass

    def write_artifacts(self, dest: Path) -> None:
        pass


def test_a_failed_template_fails_later_requests_at_once(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pool = MachinePool(RunConfig(), tmp_path)
    made: list[str] = []

    def fake_new(spec: MachineSpec, artifact_name: str, name: str = "") -> Any:
        made.append(artifact_name)
        return FailingTemplateMachine()

    monkeypatch.setattr(pool, "_new_machine", fake_new)
    digest = template_digest(SPEC)
    with pytest.raises(BootError, match="no SSH"):
        pool.template(SPEC, digest)
    with pytest.raises(BootError, match="failed earlier: no SSH"):
        pool.template(SPEC, digest)
    assert made == [TEMPLATES_DIR]  # booted once


def test_reports_say_which_machines_were_restored() -> None:
    from kolapy.report.junit import _properties
    from kolapy.report.kola_json import report_dict
    from kolapy.report.model import Result, TestRecord

    rec = TestRecord(name="t", result=Result.PASS, machines=["gw-2"],
                     restored={"gw-2": "gw-tabc123"})
    entry = report_dict([rec])["tests"][0]
    assert entry["restored_from"] == {"gw-2": "gw-tabc123"}
    assert ("kola.restored", "gw-2 from gw-tabc123") in _properties(rec)
    booted = TestRecord(name="u", result=Result.PASS, machines=["gw-3"])
    assert "restored_from" not in report_dict([booted])["tests"][0]
