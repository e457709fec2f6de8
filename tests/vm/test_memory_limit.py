"""Memory-aware admission with real machines: room for two, three workers, three machines.

CI cost: 3 boots of the default machine, at most two at once (about two boot times).
The host memory kolapy may use is capped (``KOLAPY_HOST_MEMORY_MIB``) so that two
default machines fit and a third does not; the ledger is private to this run
(its own ``TMPDIR``), so machines of other tests running beside it do not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.machine.memory import QEMU_OVERHEAD_MIB
from kolapy.machine.spec import MachineSpec

pytestmark = pytest.mark.vm

KOLA_TESTS = '''
from kolapy import kola


@kola(name="mem.one")
def test_one(machine):
    machine.succeed("sleep 5; test -e /etc/os-release")


@kola(name="mem.two")
def test_two(machine):
    machine.succeed("sleep 5; test -e /etc/os-release")


@kola(name="mem.three")
def test_three(machine):
    machine.succeed("sleep 5; test -e /etc/os-release")
'''


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_room_for_two_runs_three_machines_at_most_two_at_once(
    ref_image: Path, tmp_path: Path
) -> None:
    need = MachineSpec(image=ref_image).memory_mib + QEMU_OVERHEAD_MIB
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, "KOLAPY_HOST_MEMORY_MIB": str(2 * need + need // 2),
           "TMPDIR": str(private_tmp)}
    (tmp_path / "test_mem_kola.py").write_text(KOLA_TESTS)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "3",
         f"--nestos-image={ref_image}", f"--kola-output-dir={out}",
         str(tmp_path / "test_mem_kola.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=2400,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((out / "reports" / "report.json").read_text())
    results = {t["name"]: t["result"] for t in report["tests"]}
    assert results == {"mem.one": "PASS", "mem.two": "PASS", "mem.three": "PASS"}, results

    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    start: dict[str, float] = {}
    stop: dict[str, float] = {}
    for e in events:
        if e["event"] == "booting":  # the last one: after admission, before QEMU starts
            start[e["machine"]] = e["t"]
        elif e["event"] == "stopped":
            stop[e["machine"]] = e["t"]
    assert set(stop) == set(start), events
    tested = {e["machine"] for e in events if e["test"].startswith("mem.")}
    assert len(tested) == 3 and tested <= set(start), events
    # Every QEMU of the run counts (a saved machine's too, were there one).
    assert _max_overlap([(start[m], stop[m]) for m in start]) <= 2, events
    waited = [e for e in events if e["event"] == "waiting"]
    assert waited, "no machine waited for memory"
    assert all(e["need_mib"] == need for e in waited), waited
