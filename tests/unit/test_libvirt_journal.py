"""The journal of libvirt objects: a dead process's objects reach the next run's sweep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.errors import BadInputError
from kolapy.machine import libvirt_hosts, libvirt_journal

CHILD = """
import os, sys
from kolapy.machine import libvirt_journal as j
j.record("qemu:///system", "volume", "kolapy/kolapy-t1-gw0-m1-disk0.qcow2")
j.record("qemu:///system", "network", "kolapy-t1-gw0-nat")
print("recorded", flush=True)
sys.stdin.readline()
os._exit(0)  # no cleanup at all, as after kill -9
"""


@pytest.fixture
def state(_private_state_dir: Path) -> Path:
    """This test's journal dir (conftest gives every unit test a state dir of its own)."""
    return _private_state_dir / "libvirt-journals"


def _child(state: Path) -> subprocess.Popen[str]:
    env = {"KOLAPY_STATE_DIR": str(state.parent), "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None and p.stdout.readline() == "recorded\n"
    return p


def test_a_live_process_journal_is_left_alone_a_dead_one_is_handed_over(state: Path) -> None:
    p = _child(state)
    try:
        with libvirt_journal.dead_journals() as dead:
            assert dead == []  # its process holds the lock
        assert len(list(state.glob("*.objs"))) == 1
    finally:
        p.communicate("\n", timeout=30)
    with libvirt_journal.dead_journals() as dead:
        (j,) = dead
        assert j.entries == [("qemu:///system", "volume", "kolapy/kolapy-t1-gw0-m1-disk0.qcow2"),
                             ("qemu:///system", "network", "kolapy-t1-gw0-nat")]
        j.remove()
    assert list(state.iterdir()) == []


class _Obj:
    def __init__(self, store: set[str], name: str) -> None:
        self.store, self.name = store, name

    def destroy(self) -> None:
        self.store.discard(self.name)

    def delete(self, _flags: int) -> None:
        self.store.discard(self.name)


def test_sweep_destroys_what_is_left_and_keeps_journals_it_cannot_finish(
        state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libvirt = pytest.importorskip("libvirt")
    left = {"kolapy-t1-gw0-nat"}  # the volume was deleted already

    def lookup(_conn: object, kind: str, name: str) -> _Obj:
        key = name.partition("/")[2] if kind == "volume" else name
        if key not in left:
            err = libvirt.libvirtError("gone")
            err.err = (libvirt.VIR_ERR_NO_STORAGE_VOL,) + (0,) * 8
            raise err
        return _Obj(left, key)

    reachable = True

    def connect(uri: str) -> object:
        if not reachable:
            raise BadInputError(f"cannot reach libvirt at {uri}: no answer")
        return object()

    monkeypatch.setattr(libvirt_hosts, "_lookup", lookup)
    monkeypatch.setattr(libvirt_hosts, "connect", connect)
    _child(state).communicate("\n", timeout=30)
    reachable = False
    assert libvirt_hosts.sweep_killed_runs() == []
    assert left and len(list(state.glob("*.objs"))) == 1  # kept for a later run
    reachable = True
    assert libvirt_hosts.sweep_killed_runs() == ["kolapy-t1-gw0-nat"]
    assert not left and list(state.glob("*.objs")) == []
    assert libvirt_hosts.live_names() == []


def test_own_journal_is_removed_when_everything_is_destroyed(state: Path) -> None:
    libvirt_hosts.register("qemu:///system", "network", "kolapy-t2-gw0-nat", _Obj(set(), "x"))
    assert len(list(state.glob("*.objs"))) == 1
    with libvirt_journal.dead_journals() as dead:
        assert dead == []  # ours, and we live
    assert libvirt_hosts.destroy_all() == 1
    assert list(state.glob("*.objs")) == []


def test_an_unwritable_state_dir_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("KOLAPY_STATE_DIR", str(blocker))  # a file: no dir below it
    monkeypatch.setattr(libvirt_journal, "_warned", False)
    libvirt_journal.record("qemu:///system", "network", "kolapy-t3-gw0-nat")
    libvirt_journal.record("qemu:///system", "network", "kolapy-t3-gw1-nat")
    assert sum("journal not written" in r.message for r in caplog.records) == 1
