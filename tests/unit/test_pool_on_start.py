"""MachinePool.boot(on_start=): the hook runs after QEMU starts and before the wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kolapy.config import RunConfig
from kolapy.errors import EmergencyError
from kolapy.machine.spec import MachineSpec
from kolapy.pool import MachinePool


class Recorder:
    def __init__(self, calls: list[str], fail_wait: bool = False) -> None:
        self.name = "m1"
        self.calls = calls
        self.fail_wait = fail_wait

    def start(self) -> None:
        self.calls.append("start")

    def wait_ready(self) -> None:
        self.calls.append("wait_ready")
        if self.fail_wait:
            raise EmergencyError("m1: the initramfs reported an emergency")

    def stop(self) -> None:
        self.calls.append("stop")

    def write_artifacts(self, dest: Path) -> None:
        self.calls.append("artifacts")


class HookPool(MachinePool):
    def __init__(self, *args: Any, machine: Recorder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.machine = machine

    def _new_machine(self, spec: MachineSpec, artifact_name: str) -> Any:
        self.machine.artifact_dir = self.output_dir / artifact_name  # type: ignore[attr-defined]
        return self.machine


def test_hook_runs_between_start_and_wait(tmp_path: Path) -> None:
    calls: list[str] = []
    pool = HookPool(RunConfig(), tmp_path, machine=Recorder(calls))
    got = pool.boot(MachineSpec(image=Path("/img")), "t",
                    on_start=lambda m: calls.append(f"hook:{m.name}"))
    assert got.name == "m1"
    assert calls == ["start", "hook:m1", "wait_ready"]


def test_failed_boot_after_hook_stops_the_machine(tmp_path: Path) -> None:
    calls: list[str] = []
    pool = HookPool(RunConfig(), tmp_path, machine=Recorder(calls, fail_wait=True))
    with pytest.raises(EmergencyError):
        pool.boot(MachineSpec(image=Path("/img")), "t", on_start=lambda m: calls.append("hook"))
    assert calls == ["start", "hook", "wait_ready", "stop", "artifacts"]


def test_no_hook_is_the_old_boot(tmp_path: Path) -> None:
    calls: list[str] = []
    HookPool(RunConfig(), tmp_path, machine=Recorder(calls)).boot(
        MachineSpec(image=Path("/img")), "t")
    assert calls == ["start", "wait_ready"]
