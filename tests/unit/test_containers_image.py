"""The container test image: docker-archive builder, ELF checks, cache and user override."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
from pathlib import Path

import pytest

from kolapy.containers import busybox
from kolapy.containers.archive import DEFAULT_TAG, build_archive, layer_tar, read_archive
from kolapy.enums import Arch
from kolapy.errors import BadInputError

FAKE_BUSYBOX = b"\x7fELF-not-really-busybox"


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()}


def test_archive_is_docker_save_format(tmp_path: Path) -> None:
    archive = build_archive(FAKE_BUSYBOX, Arch.AARCH64, tmp_path / "img.tar")
    files = _members(archive.path)
    (manifest,) = json.loads(files["manifest.json"])
    assert manifest["RepoTags"] == [DEFAULT_TAG]
    config_bytes = files[manifest["Config"]]
    assert manifest["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert archive.image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    assert config["architecture"] == "arm64" and config["os"] == "linux"
    (layer_name,) = manifest["Layers"]
    layer = files[layer_name]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert "Cmd" in config["config"]


def test_layer_holds_busybox_and_applet_links() -> None:
    with tarfile.open(fileobj=io.BytesIO(layer_tar(FAKE_BUSYBOX))) as tar:
        bb = tar.getmember("bin/busybox")
        assert bb.mode == 0o755
        assert tar.extractfile(bb).read() == FAKE_BUSYBOX  # type: ignore[union-attr]
        for applet in ("sh", "httpd", "wget", "sleep", "cat", "id"):
            link = tar.getmember(f"bin/{applet}")
            assert link.issym() and link.linkname == "busybox", applet
        assert tar.getmember("tmp").mode == 0o1777
        assert tar.getmember("www").isdir()


def test_archive_is_deterministic(tmp_path: Path) -> None:
    a = build_archive(FAKE_BUSYBOX, Arch.X86_64, tmp_path / "a.tar")
    b = build_archive(FAKE_BUSYBOX, Arch.X86_64, tmp_path / "b.tar")
    assert a.path.read_bytes() == b.path.read_bytes()
    other = build_archive(FAKE_BUSYBOX + b"x", Arch.X86_64, tmp_path / "c.tar")
    assert other.image_id != a.image_id


def test_read_archive_round_trip_and_errors(tmp_path: Path) -> None:
    built = build_archive(FAKE_BUSYBOX, Arch.X86_64, tmp_path / "img.tar", tag="example/x:2")
    assert read_archive(built.path) == built
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="not a docker-archive"):
        read_archive(junk)


def _elf(machine: int, interp: bool) -> bytes:
    """A minimal ELF64 LE header + one program header (PT_INTERP or PT_LOAD)."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<H", header, 18, machine)
    struct.pack_into("<Q", header, 32, 64)          # e_phoff
    struct.pack_into("<HH", header, 54, 56, 1)      # e_phentsize, e_phnum
    ph = bytearray(56)
    struct.pack_into("<I", ph, 0, 3 if interp else 1)
    return bytes(header + ph)


def test_elf_checks() -> None:
    assert busybox.is_static_for(_elf(62, interp=False), Arch.X86_64)
    assert not busybox.is_static_for(_elf(62, interp=True), Arch.X86_64)
    assert not busybox.is_static_for(_elf(62, interp=False), Arch.AARCH64)
    assert busybox.is_static_for(_elf(183, interp=False), Arch.AARCH64)
    assert not busybox.is_static_for(b"#!/bin/sh\n", Arch.X86_64)


def test_user_image_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = build_archive(FAKE_BUSYBOX, Arch.AARCH64, tmp_path / "own.tar", tag="example/own:1")
    monkeypatch.setenv("KOLAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KOLAPY_CONTAINER_IMAGE", "/nonexistent.tar")
    monkeypatch.setenv("KOLAPY_CONTAINER_IMAGE_AARCH64", str(own.path))
    assert busybox.test_image(Arch.AARCH64).tag == "example/own:1"   # arch-specific wins
    with pytest.raises(BadInputError, match="does not exist"):
        busybox.test_image(Arch.X86_64)                              # generic one is used
    assert not (tmp_path / "cache").exists(), "a user image must not trigger a build"


def test_cached_build_happens_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOLAPY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KOLAPY_CONTAINER_IMAGE", raising=False)
    monkeypatch.delenv("KOLAPY_CONTAINER_IMAGE_AARCH64", raising=False)
    calls: list[Arch] = []

    def fake(arch: Arch, workdir: Path) -> bytes:
        calls.append(arch)
        return FAKE_BUSYBOX

    monkeypatch.setattr(busybox, "busybox_for", fake)
    first = busybox.test_image(Arch.AARCH64)
    second = busybox.test_image(Arch.AARCH64)
    assert calls == [Arch.AARCH64]
    assert first == second
    expected = f"busybox-{busybox.recipe_hash()}.tar"
    assert first.path == tmp_path / "containers" / "aarch64" / expected
    assert not list(first.path.parent.glob(".build-*")), "build dir left behind"
