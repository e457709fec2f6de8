"""Live ISO embed area: newc cpio, xz (CRC32), igninfo.json lookup, round trip."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest

from kolapy.errors import BadInputError
from kolapy.ignition import Ignition, embed_in_iso, read_from_iso
from kolapy.ignition.cpio import newc_archive, read_newc
from kolapy.ignition.iso import embed_payload, find_embed_area

AREA = 256 * 1024


def make_iso(
    path: Path, *, nestos: bool = False, area: int = AREA, rock_ridge: bool = True
) -> Path:
    """A tiny live-ISO look-alike: the embed file plus igninfo.json naming it."""
    iso = pycdlib.PyCdlib()
    kw = {"rock_ridge": "1.09", "joliet": 3} if rock_ridge else {}
    iso.new(interchange_level=1, **kw)

    def add_dir(short: str, long: str) -> None:
        extra = {"rr_name": long, "joliet_path": "/" + long} if rock_ridge else {}
        iso.add_directory("/" + short, **extra)

    def add_file(short: str, long: str, data: bytes) -> None:
        extra = {"rr_name": long.rsplit("/", 1)[1], "joliet_path": "/" + long} if rock_ridge else {}
        iso.add_fp(io.BytesIO(data), len(data), "/" + short + ";1", **extra)

    info = json.dumps({"file": "images/ignition.img"}).encode()
    if nestos:
        add_dir("NESTOS", "nestos")
        add_file("NESTOS/IGNINFO.JSO", "nestos/igninfo.json", info)
    else:
        add_dir("COREOS", "coreos")
        add_file("COREOS/IGNINFO.JSO", "coreos/igninfo.json", info)
    add_dir("IMAGES", "images")
    add_file("IMAGES/IGNITION.IMG", "images/ignition.img", bytes(area))
    add_file("IMAGES/OTHER.IMG", "images/other.img", b"\xaa" * 4096)  # must stay intact
    iso.write(str(path))
    iso.close()
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CONFIG = Ignition().add_ssh_key("nest", "ssh-ed25519 AAAA test").add_file("/etc/motd", "embedded\n")


def test_cpio_round_trip() -> None:
    files = {"config.ign": (b'{"a":1}', 0o600), "dir/x": (b"12345", 0o644)}
    archive = newc_archive(files)
    assert archive.startswith(b"070701")
    assert len(archive) % 4 == 0
    parsed = read_newc(archive)
    assert parsed["config.ign"] == (b'{"a":1}', 0o100600)
    assert parsed["dir/x"] == (b"12345", 0o100644)
    with pytest.raises(ValueError, match="no newc cpio header"):
        read_newc(b"garbage")


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
def test_cpio_is_readable_by_gnu_cpio(tmp_path: Path) -> None:
    archive = newc_archive({"config.ign": (b"{}\n", 0o600)})
    subprocess.run(["cpio", "-i", "--quiet"], input=archive, cwd=tmp_path, check=True)
    out = tmp_path / "config.ign"
    assert out.read_bytes() == b"{}\n"
    assert out.stat().st_mode & 0o777 == 0o600


def test_payload_is_xz_with_crc32() -> None:
    payload = embed_payload(CONFIG)
    assert payload.startswith(b"\xfd7zXZ\x00")
    # Stream flags (bytes 6-7): check type 0x01 = CRC32, what the kernel can verify.
    assert payload[6:8] == b"\x00\x01"
    files = read_newc(lzma.decompress(payload))
    assert json.loads(files["config.ign"][0]) == CONFIG.to_dict()
    assert files["config.ign"][1] & 0o777 == 0o600


@pytest.mark.parametrize("nestos", [False, True], ids=["coreos", "nestos"])
def test_find_embed_area(tmp_path: Path, nestos: bool) -> None:
    iso = make_iso(tmp_path / "live.iso", nestos=nestos)
    area = find_embed_area(iso)
    assert area.file == "images/ignition.img"
    assert area.length == AREA
    assert area.offset % 2048 == 0
    assert iso.read_bytes()[area.offset : area.offset + area.length] == bytes(AREA)


def test_find_embed_area_without_rock_ridge(tmp_path: Path) -> None:
    iso = make_iso(tmp_path / "plain.iso", rock_ridge=False)
    assert find_embed_area(iso).length == AREA


def test_round_trip_and_input_untouched(tmp_path: Path) -> None:
    src = make_iso(tmp_path / "live.iso")
    before = sha(src)
    assert read_from_iso(src) is None  # zeros: nothing embedded
    out = embed_in_iso(src, tmp_path / "custom.iso", CONFIG)
    assert sha(src) == before
    assert out.stat().st_size == src.stat().st_size
    assert read_from_iso(out) == CONFIG
    # Only the area changed: everything else is byte-identical.
    area = find_embed_area(src)
    a, b = src.read_bytes(), out.read_bytes()
    assert a[: area.offset] == b[: area.offset]
    assert a[area.offset + area.length :] == b[area.offset + area.length :]
    assert not list(tmp_path.glob("*.part"))


def test_reembed_replaces_config(tmp_path: Path) -> None:
    src = make_iso(tmp_path / "live.iso")
    first = embed_in_iso(src, tmp_path / "one.iso", CONFIG)
    other = Ignition().add_file("/x", "y")
    second = embed_in_iso(first, tmp_path / "two.iso", other)
    assert read_from_iso(second) == other


@pytest.mark.skipif(
    shutil.which("xz") is None or shutil.which("cpio") is None, reason="xz or cpio not installed"
)
def test_area_checks_with_xz_and_cpio_tools(tmp_path: Path) -> None:
    out = embed_in_iso(make_iso(tmp_path / "live.iso"), tmp_path / "custom.iso", CONFIG)
    area = find_embed_area(out)
    blob = tmp_path / "area.xz"
    blob.write_bytes(out.read_bytes()[area.offset : area.offset + area.length])
    # xz accepts the zero padding after the stream (it is xz "stream padding").
    subprocess.run(["xz", "-t", str(blob)], check=True)
    info = subprocess.run(
        ["xz", "--robot", "-l", str(blob)], capture_output=True, text=True, check=True
    )
    assert "CRC32" in info.stdout
    archive = subprocess.run(["xz", "-dc", str(blob)], capture_output=True, check=True).stdout
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    assert listing.startswith("-rw-------")
    assert listing.rstrip().endswith("config.ign")
    extract = tmp_path / "x"
    extract.mkdir()
    subprocess.run(["cpio", "-i", "--quiet"], input=archive, cwd=extract, check=True)
    assert json.loads((extract / "config.ign").read_text()) == CONFIG.to_dict()


def test_too_big_config_is_an_error(tmp_path: Path) -> None:
    src = make_iso(tmp_path / "small.iso", area=2048)
    noise = b"".join(hashlib.sha512(str(i).encode()).digest() for i in range(128))  # 8 KiB
    big = Ignition().add_file("/noise", noise)
    with pytest.raises(
        BadInputError,
        match=r"small\.iso: Ignition config too big for the embed area"
        r" \(\d+ bytes compressed > 2048\)",
    ):
        embed_in_iso(src, tmp_path / "out.iso", big)
    assert not (tmp_path / "out.iso").exists()


def test_refuses_to_write_the_input(tmp_path: Path) -> None:
    src = make_iso(tmp_path / "live.iso")
    before = sha(src)
    with pytest.raises(BadInputError, match="refusing to embed into the input ISO"):
        embed_in_iso(src, src, CONFIG)
    assert sha(src) == before


def test_iso_without_igninfo(tmp_path: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.new()
    iso.add_fp(io.BytesIO(b"x"), 1, "/A.TXT;1")
    path = tmp_path / "plain.iso"
    iso.write(str(path))
    iso.close()
    with pytest.raises(BadInputError, match=r"plain\.iso: no Ignition embed area"):
        read_from_iso(path)


def test_not_an_iso(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.iso"
    bogus.write_bytes(b"\0" * 100)
    with pytest.raises(BadInputError, match=r"bogus\.iso: not a readable ISO image"):
        find_embed_area(bogus)


def test_garbage_in_area(tmp_path: Path) -> None:
    src = make_iso(tmp_path / "live.iso")
    area = find_embed_area(src)
    with open(src, "r+b") as f:
        f.seek(area.offset)
        f.write(b"junk")
    with pytest.raises(BadInputError, match=r"images/ignition\.img: embed area holds no xz cpio"):
        read_from_iso(src)
