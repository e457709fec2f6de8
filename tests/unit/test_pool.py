"""MachinePool: sharing, release, remembered boot failures (fake machines, no VM)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kolapy.config import RunConfig
from kolapy.errors import BootError
from kolapy.machine import process
from kolapy.machine.spec import MachineSpec
from kolapy.pool import MachinePool


class FakeMachine:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stopped = False
        self.artifacts: Path | None = None

    def stop(self) -> None:
        self.stopped = True

    def write_artifacts(self, dest: Path) -> None:
        self.artifacts = dest


class FakePool(MachinePool):
    def __init__(self, *args: Any, fail: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.booted: list[FakeMachine] = []
        self.fail = fail

    def boot(self, spec: MachineSpec, artifact_name: str) -> Any:
        if self.fail:
            raise BootError("no SSH in time")
        m = FakeMachine(f"m{len(self.booted)}")
        m.artifact_dir = self.output_dir / artifact_name / m.name  # type: ignore[attr-defined]
        self.booted.append(m)
        return m


SPEC = MachineSpec(image=Path("/img"))


def test_shared_key_boots_once_and_stops_after_last_user(tmp_path: Path) -> None:
    pool = FakePool(RunConfig(), tmp_path)
    pool.users["k"] = 2
    a = pool.acquire("k", SPEC, "basic")
    b = pool.acquire("k", SPEC, "basic")
    assert a is b and len(pool.booted) == 1
    pool.release("k")
    assert not a.stopped
    pool.release("k")
    assert a.stopped
    assert a.artifacts == tmp_path / "basic" / "m0"


def test_boot_failure_is_remembered(tmp_path: Path) -> None:
    pool = FakePool(RunConfig(), tmp_path, fail=True)
    with pytest.raises(BootError, match="no SSH"):
        pool.acquire("k", SPEC, "basic")
    pool.fail = False
    with pytest.raises(BootError, match="failed to boot earlier"):
        pool.acquire("k", SPEC, "basic")
    assert pool.booted == []


def test_kept_machine_survives_release_until_close(tmp_path: Path) -> None:
    pool = FakePool(RunConfig(), tmp_path)
    pool.users["k"] = 1
    m = pool.acquire("k", SPEC, "t")
    assert pool.keep("k") is m
    pool.release("k")
    assert not m.stopped
    assert pool.kept_machines() == [m]
    pool.close()
    assert m.stopped


def test_close_stops_everything(tmp_path: Path) -> None:
    pool = FakePool(RunConfig(), tmp_path)
    machines = [pool.acquire(k, SPEC, k) for k in ("a", "b")]
    pool.close()
    assert all(m.stopped for m in machines)


class GracefulMachine(FakeMachine):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.graceful: bool | None = None

    def stop(self, graceful: bool = True) -> None:  # type: ignore[override]
        self.stopped, self.graceful = True, graceful


def test_interrupted_run_kills_machines_and_keeps_their_artifacts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = FakePool(RunConfig(), tmp_path)
    calm, hurried = GracefulMachine("calm"), GracefulMachine("hurried")
    for m in (calm, hurried):
        m.artifact_dir = tmp_path / "t" / m.name  # type: ignore[attr-defined]
    pool.stop(calm)
    assert calm.graceful is True
    monkeypatch.setattr(process, "_interrupted", threading.Event())  # this process only
    process.mark_interrupted()
    pool.stop(hurried)
    assert hurried.graceful is False  # no power-down wait: the worker's grace is short
    assert hurried.artifacts == tmp_path / "t" / "hurried"
