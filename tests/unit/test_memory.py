"""Memory-aware admission: machines wait for host memory instead of failing to start."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kolapy.errors import InfraError
from kolapy.machine import memory
from kolapy.machine.memory import QEMU_OVERHEAD_MIB, admit, auto_workers


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A ledger of our own and a host with room for exactly two 1 GiB machines."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    monkeypatch.setattr(memory, "ledger_dir", lambda: ledger)
    monkeypatch.setenv(memory.ENV_LIMIT, str(2 * (1024 + QEMU_OVERHEAD_MIB) + 100))
    return ledger


def test_two_fit_the_third_waits_until_one_stops(host: Path) -> None:
    a = admit("a", 1024, ledger=host)
    b = admit("b", 1024, ledger=host)
    assert a.waited_s == 0 and b.waited_s == 0
    waited: list[tuple[int, int]] = []
    got: list[memory.Reservation] = []
    t = threading.Thread(target=lambda: got.append(
        admit("c", 1024, ledger=host, poll=0.05, on_wait=lambda n, f: waited.append((n, f)))))
    t.start()
    time.sleep(0.5)
    assert not got, "a third machine was admitted with no memory left"
    a.release()
    t.join(10)
    assert got and got[0].waited_s > 0
    assert waited and waited[0][0] == 1024 + QEMU_OVERHEAD_MIB
    b.release()
    got[0].release()
    assert list(host.glob("*.json")) == []


def test_waiting_is_bounded(host: Path) -> None:
    a = admit("a", 1024, ledger=host)
    b = admit("b", 1024, ledger=host)
    with pytest.raises(InfraError, match=r"waited .* for 1344 MiB"):
        admit("c", 1024, ledger=host, timeout=0.2, poll=0.05)
    a.release()
    b.release()


def test_a_machine_too_big_for_the_host_still_runs_alone(host: Path) -> None:
    big = admit("big", 10**6, ledger=host, timeout=1)
    assert big.waited_s == 0
    big.release()


def test_entries_of_dead_processes_are_ignored(host: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = host / "stale.json"
    stale.write_text(json.dumps({"owner": int(dead.stdout), "pid": None,
                                 "reserve_mib": 10**6, "machine": "crashed"}))
    r = admit("a", 1024, ledger=host, timeout=1)
    assert not stale.exists()
    r.release()


def test_running_machines_count_what_they_still_may_take(host: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memory.ENV_LIMIT)
    monkeypatch.setattr(memory, "mem_available_mib", lambda: 3000)
    a = admit("a", 1024, ledger=host)  # reserves 1344, touched nothing yet
    with pytest.raises(InfraError):
        admit("b", 1500, ledger=host, timeout=0.2, poll=0.05)  # 3000 - 1344 < 1820
    # QEMU of "a" grew to its full size: that memory is already out of MemAvailable.
    monkeypatch.setattr(memory, "rss_mib", lambda pid: 1344 if pid == 4242 else 0)
    a.set_pid(4242)
    monkeypatch.setattr(memory, "pid_alive", lambda pid: True)
    b = admit("b", 1500, ledger=host, timeout=1)
    a.release()
    b.release()


def test_auto_workers_from_cores_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "mem_available_mib", lambda: 3 * (2048 + QEMU_OVERHEAD_MIB))
    assert auto_workers(2048, cores=8) == 3
    assert auto_workers(2048, cores=2) == 2
    assert auto_workers(64 * 1024, cores=8) == 1


def test_progress_shows_machines_waiting_for_memory() -> None:
    from kolapy.report.progress import RunProgress

    p = RunProgress(start=0.0)
    p.machine_event({"t": 1.0, "event": "booting", "machine": "gw0-3", "test": "t"})
    p.machine_event({"t": 1.5, "event": "waiting", "machine": "gw0-3", "need_mib": 2368})
    assert p.machines["gw0-3"].state == "waiting"
    p.machine_event({"t": 9.0, "event": "booting", "machine": "gw0-3", "test": "t"})
    assert p.machines["gw0-3"].state == "booting" and p.machines["gw0-3"].since == 9.0
    lines = [line.text for line in p.take_lines()]
    assert any("waiting for memory (2368 MiB)" in t for t in lines), lines


def test_cli_parallel_auto() -> None:
    from kolapy.cli import _parallel

    assert _parallel("auto") == "auto"
    assert _parallel("3") == 3
    with pytest.raises(Exception, match="at least 1"):
        _parallel("0")


def test_a_machine_bigger_than_the_host_never_waits(host: Path) -> None:
    running = admit("a", 1024, ledger=host)
    huge = admit("toobig", 64 * 1024 * 1024, ledger=host, timeout=0.5, poll=0.05)
    assert huge.waited_s == 0
    # ...and its reservation, capped at the host's size, does not starve the others forever
    huge.release()
    other = admit("b", 1024, ledger=host, timeout=1)
    running.release()
    other.release()
