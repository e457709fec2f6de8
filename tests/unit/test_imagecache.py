"""`kolapy image list/prune`: stale entries go, the current recipe's and used ones stay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.enums import Arch
from kolapy.imagecache import list_entries, prune
from kolapy.refimage.recipe import recipe_for, recipe_hash


def _entry(images: Path, name: str, arch: str = "x86_64") -> Path:
    entry = images / name
    entry.mkdir(parents=True)
    (entry / f"ref-{arch}.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 4096)
    (entry / "manifest.json").write_text(json.dumps({"arch": arch, "built_at": "2026-12-01"}))
    (images / f"{name}.lock").touch()
    return entry


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KOLAPY_CACHE_DIR", str(tmp_path))
    return tmp_path / "images"


def test_prune_removes_a_stale_entry_and_keeps_the_current(images: Path) -> None:
    current = _entry(images, recipe_hash(recipe_for(Arch.X86_64)))
    current_arm = _entry(images, recipe_hash(recipe_for(Arch.AARCH64)), "aarch64")
    stale = _entry(images, "0123456789abcdef")
    (stale / "upgrade-repo").mkdir()  # whatever else lives in an entry goes with it
    work = images / ".build-0123456789abcdef-1-aa"  # a build in progress is no entry
    work.mkdir()
    other = images / "notes"  # nor is a name prune does not know
    other.mkdir()
    stale_iso = _entry(images, "iso-00112233445566ff")
    listed = {e.name: e for e in list_entries()}
    assert set(listed) == {current.name, current_arm.name, stale.name, stale_iso.name}
    assert listed[current.name].current and not listed[stale.name].current

    gone = sorted([stale.name, stale_iso.name])
    assert sorted(e.name for e in prune(dry_run=True)) == gone
    assert stale.exists()
    assert sorted(e.name for e in prune()) == gone
    assert not stale.exists() and not (images / f"{stale.name}.lock").exists()
    assert not stale_iso.exists()
    assert current.exists() and current_arm.exists() and work.exists() and other.exists()


def test_prune_keeps_an_entry_a_running_process_uses(images: Path, tmp_path: Path) -> None:
    used = _entry(images, "fedcba9876543210")
    # A stand-in for QEMU: a process holding the image open (QEMU opens the backing file).
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); "
         "print('open', flush=True); time.sleep(60)", str(used / "ref-x86_64.qcow2")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        (entry,) = list_entries()
        assert entry.users == (holder.pid,)
        assert prune() == [] and used.exists()
    finally:
        holder.kill()
        holder.wait()
    assert [e.name for e in prune()] == [used.name]


def test_cli_list_and_prune(images: Path) -> None:
    stale = _entry(images, "0123456789abcdef")
    run = [sys.executable, "-m", "kolapy.cli", "image"]
    out = subprocess.run([*run, "list"], capture_output=True, text=True, timeout=60, check=True)
    assert "0123456789abcdef" in out.stdout and "stale" in out.stdout
    listed = json.loads(subprocess.run([*run, "list", "--json"], capture_output=True,
                                       text=True, timeout=60, check=True).stdout)
    assert listed[0]["hash"] == stale.name and listed[0]["current"] is False
    out = subprocess.run([*run, "prune"], capture_output=True, text=True, timeout=60, check=True)
    assert "removed 0123456789abcdef" in out.stdout and not stale.exists()
