"""Unit tests of the reference image cache: recipe hash, lookup, lock, atomic publish."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from kolapy.enums import Arch
from kolapy.errors import BadInputError, InfraError
from kolapy.refimage import build, cache, recipe, tools


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("KOLAPY_CACHE_DIR", str(root))
    return root


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the real build steps (and the host checks) with a quick fake."""
    calls: list[str] = []

    def fake(rcp: recipe.Recipe, work: Path, say: build.Progress) -> Path:
        calls.append(work.name)
        time.sleep(0.2)
        out = work / "out"
        out.mkdir()
        (out / rcp.image_name).write_bytes(b"QFI\xfb")
        (out / cache.MANIFEST).write_text(json.dumps({"recipe_hash": "x"}))
        return out

    monkeypatch.setattr(build, "_build_in", fake)
    monkeypatch.setattr(build, "require_host_tools", lambda platforms: None)
    return calls


def test_cache_root_honours_env(cache_dir: Path) -> None:
    assert cache.cache_root() == cache_dir


def test_recipe_hash_is_stable_and_per_arch() -> None:
    x86 = recipe.recipe_for(Arch.X86_64)
    assert recipe.recipe_hash(x86) == recipe.recipe_hash(x86)
    assert recipe.recipe_hash(x86) != recipe.recipe_hash(recipe.recipe_for(Arch.AARCH64))
    assert len(recipe.recipe_hash(x86)) == 16


def test_recipe_hash_covers_shipped_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "refimage"
    shutil.copytree(recipe.HERE, here, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(recipe, "HERE", here)
    monkeypatch.setattr(recipe, "FILES_DIR", here / "files")
    x86 = recipe.recipe_for(Arch.X86_64)
    before = recipe.recipe_hash(x86)
    with (here / "files/rootfs/etc/sudoers.d/nest").open("a") as f:
        f.write("# changed\n")
    assert recipe.recipe_hash(x86) != before


def test_recipe_hash_covers_packages() -> None:
    x86 = recipe.recipe_for(Arch.X86_64)
    more = recipe.Recipe(**{**x86.__dict__, "packages": (*x86.packages, "htop")})
    assert recipe.recipe_hash(more) != recipe.recipe_hash(x86)


def test_image_path_none_until_built(fake_build: list[str]) -> None:
    assert cache.image_path() is None
    path = build.build_image(progress=lambda m: None)
    assert cache.image_path() == path
    assert path.name == "ref-x86_64.qcow2"
    assert path.parent.name == recipe.recipe_hash(recipe.recipe_for(Arch.X86_64))
    assert cache.read_manifest() == {"recipe_hash": "x"}


def test_second_build_is_a_cache_hit(fake_build: list[str]) -> None:
    first = build.build_image(progress=lambda m: None)
    start = time.monotonic()
    assert build.build_image(progress=lambda m: None) == first
    assert time.monotonic() - start < 0.5
    assert len(fake_build) == 1
    build.build_image(force=True, progress=lambda m: None)
    assert len(fake_build) == 2


def test_concurrent_builds_build_once(fake_build: list[str]) -> None:
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(build.build_image(progress=print)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_build) == 1
    assert len(set(results)) == 1 and len(results) == 3


def test_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    def failing(rcp: recipe.Recipe, work: Path, say: build.Progress) -> Path:
        (work / "build.log").write_text("step 3 broke\n")
        (work / "out").mkdir()
        (work / "out" / rcp.image_name).write_bytes(b"half")
        raise InfraError("boom")

    monkeypatch.setattr(build, "_build_in", failing)
    monkeypatch.setattr(build, "require_host_tools", lambda platforms: None)
    with pytest.raises(InfraError, match="boom"):
        build.build_image(progress=lambda m: None)
    assert cache.image_path() is None
    leftovers = [p.name for p in (cache_dir / "images").iterdir()
                 if not p.name.endswith(".lock")]
    assert leftovers == ["last-failed-build.log"]


def test_stale_work_dirs_of_dead_builders_are_removed(fake_build: list[str],
                                                      cache_dir: Path) -> None:
    rcp = recipe.recipe_for(Arch.X86_64)
    dead = cache_dir / "images" / f".build-{recipe.recipe_hash(rcp)}-999999999-abcd"
    dead.mkdir(parents=True)
    build.build_image(progress=lambda m: None)
    assert not dead.exists()


def test_missing_host_tool_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    monkeypatch.setattr(tools, "HOST_TOOLS", {"mmdebstrap-nonexistent": "mmdebstrap"})
    with pytest.raises(BadInputError, match="apt-get install mmdebstrap"):
        tools.require_host_tools(())


def test_layout_puts_root_last() -> None:
    from kolapy.refimage import disk

    parts = disk.layout(recipe.recipe_for(Arch.X86_64))
    assert [p.name for p in parts] == ["BIOS-BOOT", "EFI-SYSTEM", "boot", "root"]
    assert parts[-1].size_mib == 0
    ends = [p.start_mib + p.size_mib for p in parts[:-1]]
    assert ends == [p.start_mib for p in parts[1:]]
