"""Live ISO pieces without a VM: kargs areas, the private copy, newc trees, rootfs.img,
the installer's YAML parsing, the ISO machine's QEMU command line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pycdlib
import pytest

from kolapy.errors import BadInputError
from kolapy.ignition import Ignition, read_from_iso
from kolapy.iso import kargs as kargs_mod
from kolapy.iso.build import FILES, KARGS_AREA_SIZE, grub_config
from kolapy.iso.media import ELTORITO_BREAK_AT, check_live_iso, prepare_live_iso
from kolapy.iso.newc import SQUASHFS_OFFSET, tree_archive, write_rootfs_img

DEFAULT = "nestos.liveiso=TEST ignition.firstboot ignition.platform.id=metal"


def make_live_iso(path: Path, *, kargs_json: bool = True) -> Path:
    """A small look-alike of the reference live ISO: embed area, kargs.json + grub.cfg."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, rock_ridge="1.09", joliet=3)

    def add_dir(short: str, long: str) -> None:
        iso.add_directory("/" + short, rr_name=long.rsplit("/", 1)[-1], joliet_path="/" + long)

    def add_file(short: str, long: str, data: bytes) -> None:
        iso.add_fp(io.BytesIO(data), len(data), "/" + short + ";1",
                   rr_name=long.rsplit("/", 1)[1], joliet_path="/" + long)

    cfg, offset = grub_config(DEFAULT)
    add_dir("NESTOS", "nestos")
    add_file("NESTOS/IGNINFO.JSO", "nestos/igninfo.json",
             json.dumps({"file": "images/ignition.img"}).encode())
    if kargs_json:
        add_file("NESTOS/KARGS.JSO", "nestos/kargs.json", json.dumps({
            "default": DEFAULT, "size": KARGS_AREA_SIZE,
            "files": [{"path": "boot/grub/grub.cfg", "offset": offset}]}).encode())
    add_dir("IMAGES", "images")
    add_file("IMAGES/IGNITION.IMG", "images/ignition.img", bytes(256 * 1024))
    add_dir("BOOT", "boot")
    add_dir("BOOT/GRUB", "boot/grub")
    add_file("BOOT/GRUB/GRUB.CFG", "boot/grub/grub.cfg", cfg.encode())
    iso.write(str(path))
    iso.close()
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_grub_config_area() -> None:
    cfg, offset = grub_config(DEFAULT)
    raw = cfg.encode()
    area = raw[offset:offset + KARGS_AREA_SIZE]
    assert area.startswith((DEFAULT + "\n#").encode())
    assert area.rstrip(b"#") == (DEFAULT + "\n").encode()
    # The kargs end the linux line; the padding is a comment line of its own.
    assert raw[:offset].endswith(b"linux /images/pxeboot/vmlinuz ")
    assert "initrd /images/pxeboot/initrd.img /images/ignition.img" in cfg


def test_find_and_write_kargs(tmp_path: Path) -> None:
    iso = make_live_iso(tmp_path / "live.iso")
    areas = kargs_mod.find_kargs_areas(iso)
    assert areas.current == DEFAULT and areas.default == DEFAULT
    assert areas.size == KARGS_AREA_SIZE and len(areas.areas) == 1
    new = kargs_mod.modify(areas.current, append=["console=ttyS0,115200"],
                           delete=["ignition.firstboot"],
                           replace=["ignition.platform.id=metal=qemu"])
    assert new == ("nestos.liveiso=TEST ignition.platform.id=qemu console=ttyS0,115200")
    kargs_mod.write_kargs(iso, areas, new)
    assert kargs_mod.find_kargs_areas(iso).current == new


def test_modify_errors() -> None:
    with pytest.raises(BadInputError, match="not present"):
        kargs_mod.modify("a b", delete=["c"])
    with pytest.raises(BadInputError, match="KEY=OLD=NEW"):
        kargs_mod.modify("a=1", replace=["a=1"])


def test_kargs_too_large(tmp_path: Path) -> None:
    iso = make_live_iso(tmp_path / "live.iso")
    areas = kargs_mod.find_kargs_areas(iso)
    with pytest.raises(BadInputError, match="too large"):
        kargs_mod.write_kargs(iso, areas, "x" * KARGS_AREA_SIZE)


def test_private_copy_embeds_and_appends(tmp_path: Path) -> None:
    src = make_live_iso(tmp_path / "live.iso")
    before = sha(src)
    config = Ignition().add_file("/etc/motd", "from the ISO\n")
    dst = prepare_live_iso(src, tmp_path / "copy.iso", config,
                           append_kargs=("console=ttyS0,115200", "nestos.liveiso=TEST"))
    assert sha(src) == before
    got = read_from_iso(dst)
    assert got is not None and got.to_dict() == config.to_dict()
    # An argument already there is not added twice.
    assert kargs_mod.find_kargs_areas(dst).current == DEFAULT + " console=ttyS0,115200"
    plain = prepare_live_iso(src, tmp_path / "plain.iso", None, as_disk=True)
    assert read_from_iso(plain) is None
    with plain.open("rb") as f:
        f.seek(ELTORITO_BREAK_AT)
        assert f.read(2) == b"NO"


def test_not_an_iso_or_not_live(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"\0" * 65536)
    with pytest.raises(BadInputError, match="not an ISO 9660 image"):
        check_live_iso(junk)
    with pytest.raises(BadInputError, match="does not exist"):
        check_live_iso(tmp_path / "missing.iso")
    plain = pycdlib.PyCdlib()
    plain.new(interchange_level=1)
    plain.add_fp(io.BytesIO(b"hi"), 2, "/README.TXT;1")
    plain.write(str(tmp_path / "plain.iso"))
    plain.close()
    with pytest.raises(BadInputError, match="no Ignition embed area"):
        check_live_iso(tmp_path / "plain.iso")
    no_kargs = make_live_iso(tmp_path / "nokargs.iso", kargs_json=False)
    with pytest.raises(BadInputError, match="no kernel-argument areas"):
        check_live_iso(no_kargs)


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed")
def test_tree_archive_is_read_by_gnu_cpio(tmp_path: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    data = tree_archive(FILES / "live-initrd")
    subprocess.run(["cpio", "-id", "--quiet"], input=data, cwd=out, check=True)
    script = out / "usr/sbin/kolapy-live-root"
    assert script.read_bytes() == (FILES / "live-initrd/usr/sbin/kolapy-live-root").read_bytes()
    assert script.stat().st_mode & stat.S_IXUSR
    assert (out / "usr/lib/systemd/system/initrd-root-fs.target.d").is_dir()


def test_rootfs_img_member_offset(tmp_path: Path) -> None:
    squash = tmp_path / "root.squashfs"
    squash.write_bytes(b"hsqs" + b"x" * 1001)
    out = tmp_path / "rootfs.img"
    write_rootfs_img(squash, out)
    raw = out.read_bytes()
    assert SQUASHFS_OFFSET == 124
    assert raw[124:128] == b"hsqs" and raw[124:124 + 1005] == squash.read_bytes()
    assert raw[110:124].rstrip(b"\0") == b"root.squashfs"
    assert b"TRAILER!!!" in raw[-128:]


def test_installer_reads_kola_yaml(tmp_path: Path) -> None:
    conf = tmp_path / "installer.d"
    conf.mkdir()
    (conf / "10-mantle.yaml").write_text(
        "dest-device: /dev/vda\nignition-file: /var/opt/x.ign\nconsole:\n- ttyS0,115200n8\n"
        "append-karg:\n- rd.debug\noffline: true\n")
    (conf / "20-more.yaml").write_text("append-karg: [a=1, 'b']  # comment\n")
    script = FILES / "live/usr/libexec/kolapy/nestos-install"
    out = subprocess.run(["sh", str(script), "--print-config"], capture_output=True, text=True,
                         env={"NESTOS_INSTALLER_CONFIG_DIR": str(conf), "PATH": "/usr/bin:/bin"},
                         check=True).stdout
    assert "dest-device=/dev/vda\n" in out
    assert "ignition-file=/var/opt/x.ign\n" in out
    assert "kargs=console=ttyS0,115200n8 rd.debug a=1 b\n" in out


def test_iso_machine_command_line(tmp_path: Path) -> None:
    from kolapy.enums import Accel
    from kolapy.machine.platform import ResolvedFirmware, load_platform
    from kolapy.machine.qemu_command import MachinePaths, QemuCommand
    from kolapy.machine.spec import MachineSpec

    spec = MachineSpec(image=tmp_path / "x.iso", boot_media="iso")
    paths = MachinePaths.for_workdir(tmp_path)
    argv = QemuCommand(spec, load_platform("x86_64"), Accel.TCG, paths, 2222,
                       ResolvedFirmware(spec.firmware)).argv()
    line = " ".join(argv)
    assert f"file={paths.live_iso},format=raw,media=cdrom,readonly=on" in line
    assert "scsi-cd,bus=scsi0.0,drive=livecd,bootindex=2" in line
    assert "name=testisocompletion" in line and "name=nestos.liveiso-success" in line
    disk = QemuCommand(MachineSpec(image=tmp_path / "x.iso", boot_media="iso-as-disk"),
                       load_platform("x86_64"), Accel.TCG, paths, 2222,
                       ResolvedFirmware(spec.firmware)).argv()
    # SeaBIOS boots only the first disk in the boot order: the ISO disk, not the blank one.
    assert "virtio-blk-pci,drive=livedisk,bootindex=1" in " ".join(disk)
    assert "virtio-blk-pci,drive=disk0,bootindex=2" in " ".join(disk)
    assert "virtio-blk-pci,drive=disk0,bootindex=1" in line
    plain = QemuCommand(MachineSpec(image=tmp_path / "x.qcow2"), load_platform("x86_64"),
                        Accel.TCG, paths, 2222, ResolvedFirmware(spec.firmware)).argv()
    assert "testisocompletion" not in " ".join(plain)


def test_cli_embed_show_remove(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from kolapy.cli import main

    iso = make_live_iso(tmp_path / "live.iso")
    cfg = tmp_path / "c.ign"
    cfg.write_bytes(b'{"ignition": {"version": "3.3.0"}}\n')
    pristine = sha(iso)
    out = tmp_path / "out.iso"
    assert main(["iso", "ignition", "embed", "-i", str(cfg), "-o", str(out), str(iso)]) == 0
    assert sha(iso) == pristine
    assert main(["iso", "ignition", "embed", "-i", str(cfg), "-o", str(out), str(iso)]) == 2
    capsysbinary.readouterr()
    assert main(["iso", "ignition", "show", str(out)]) == 0
    assert capsysbinary.readouterr().out == cfg.read_bytes()
    # Already has one: refused without --force, replaced with it (in place).
    assert main(["iso", "ignition", "embed", "-i", str(cfg), str(out)]) == 2
    assert main(["iso", "ignition", "embed", "-f", "-i", str(cfg), str(out)]) == 0
    assert main(["iso", "ignition", "remove", str(out)]) == 0
    assert sha(out) == pristine
    assert main(["iso", "ignition", "show", str(out)]) == 1
    bad = tmp_path / "bad.ign"
    bad.write_text("{not json")
    assert main(["iso", "ignition", "embed", "-i", str(bad), str(out)]) == 2
    big = tmp_path / "big.ign"
    noise = os.urandom(400_000).hex()
    big.write_text(json.dumps({"ignition": {"version": "3.3.0"}, "x": noise}))
    capsysbinary.readouterr()
    assert main(["iso", "ignition", "embed", "-i", str(big), str(out)]) == 2
    assert b"too large" in capsysbinary.readouterr().err


def test_cli_kargs_and_stdout(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from kolapy.cli import main

    iso = make_live_iso(tmp_path / "live.iso")
    assert main(["iso", "kargs", "modify", "-a", "quiet", "-d", "ignition.firstboot",
                 str(iso)]) == 0
    capsysbinary.readouterr()
    assert main(["iso", "kargs", "show", str(iso)]) == 0
    assert capsysbinary.readouterr().out.decode().strip() == (
        "nestos.liveiso=TEST ignition.platform.id=metal quiet")
    assert main(["iso", "kargs", "show", "--default", str(iso)]) == 0
    assert capsysbinary.readouterr().out.decode().strip() == DEFAULT
    assert main(["iso", "kargs", "modify", "--reset", "-o", "-", str(iso)]) == 0
    streamed = capsysbinary.readouterr().out
    assert len(streamed) == iso.stat().st_size
    copy = tmp_path / "streamed.iso"
    copy.write_bytes(streamed)
    assert kargs_mod.find_kargs_areas(copy).current == DEFAULT
    assert main(["iso", "kargs", "modify", "-d", "absent", str(iso)]) == 2


def test_nestos_iso_makes_iso_machines(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from kolapy.config import RunConfig
    from kolapy.machine.restore import restorable
    from kolapy.scheduling import spec_for

    opts = {"nestos_iso": str(tmp_path / "live.iso")}
    cfg = RunConfig.from_options(lambda dest, default: opts.get(dest, default))
    spec = spec_for(SimpleNamespace(), cfg, tmp_path / "ref.qcow2")
    assert spec.is_iso and spec.boot_media == "iso" and spec.image == tmp_path / "live.iso"
    assert restorable(spec)  # never cloned from a saved machine
    plain = spec_for(SimpleNamespace(), RunConfig.from_options(lambda d, default: default),
                     tmp_path / "ref.qcow2")
    assert not plain.is_iso and plain.image == tmp_path / "ref.qcow2"


def test_disk_image_extents(tmp_path: Path) -> None:
    from kolapy.iso.build import MIB, data_extents, write_extents

    raw = tmp_path / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(64 * MIB)
        f.seek(0)
        f.write(b"\x01" * 1000)  # MiB 0
        f.seek(10 * MIB + 5)
        f.write(b"\x02" * (2 * MIB))  # MiB 10..12
        f.seek(64 * MIB - 512)
        f.write(b"\x03" * 512)  # the last MiB (backup GPT)
    extents = data_extents(raw)
    if extents == [(0, 64)]:
        pytest.skip("this file system reports no holes (SEEK_DATA/SEEK_HOLE)")
    assert extents == [(0, 1), (10, 3), (63, 1)]
    data = tmp_path / "data"
    assert write_extents(raw, data) == extents
    blob = data.read_bytes()
    assert len(blob) == 5 * MIB
    # Writing each extent back at its offset gives the image again.
    back = bytearray(64 * MIB)
    pos = 0
    for off, count in extents:
        back[off * MIB:(off + count) * MIB] = blob[pos:pos + count * MIB]
        pos += count * MIB
    assert bytes(back) == raw.read_bytes()


def _stub_qemu(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose QEMU binaries only record that they were started."""
    bindir, marker = tmp_path / "bin", tmp_path / "qemu-started"
    bindir.mkdir()
    for name in ("qemu-system-x86_64", "qemu-system-aarch64"):
        stub = bindir / name
        stub.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    return env, marker


@pytest.mark.parametrize("kind", ["not-iso", "not-live", "missing"])
def test_run_with_a_bad_iso_is_exit_2_before_any_boot(tmp_path: Path, kind: str) -> None:
    """`kolapy run --iso X`: a non-ISO file, a plain (non-live) ISO or a missing path is
    one line naming X and exit 2; no QEMU is started and X is not written."""
    import sys

    bad = tmp_path / f"{kind}.iso"
    if kind == "not-iso":
        bad.write_bytes(os.urandom(256 * 1024))
    elif kind == "not-live":
        plain = pycdlib.PyCdlib()
        plain.new(interchange_level=1)
        plain.add_fp(io.BytesIO(b"hi"), 2, "/README.TXT;1")
        plain.write(str(bad))
        plain.close()
    before = sha(bad) if bad.exists() else None
    env, marker = _stub_qemu(tmp_path)
    exe = Path(sys.executable).with_name("kolapy")
    for argv in (["run", "iso.live-login", "--iso", str(bad)],
                 ["run", "basic", "--iso", str(bad)]):
        proc = subprocess.run([str(exe), *argv, "--output-dir", str(tmp_path / "out")],
                              capture_output=True, text=True, env=env, timeout=120)
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert proc.returncode == 2, proc.stderr
        assert len(errors) == 1 and str(bad) in errors[0], proc.stderr
        assert not marker.exists(), "QEMU was started"
    assert (sha(bad) if bad.exists() else None) == before


def test_cli_iso_verbs_refuse_a_non_live_iso(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from kolapy.cli import main

    junk = tmp_path / "junk.iso"
    junk.write_bytes(bytes(64 * 1024))
    for argv in (["iso", "ignition", "show"], ["iso", "ignition", "remove"],
                 ["iso", "kargs", "show"], ["iso", "kargs", "modify", "-a", "quiet"]):
        capsys.readouterr()
        assert main([*argv, str(junk)]) == 2
        assert "not an ISO 9660 image" in capsys.readouterr().err
    assert junk.read_bytes() == bytes(64 * 1024)


def test_live_modules_with_dependencies(tmp_path: Path) -> None:
    from kolapy.iso.build import add_live_modules

    moddir = tmp_path / "mods"
    for rel in ("kernel/fs/isofs/isofs.ko", "kernel/drivers/cdrom/cdrom.ko",
                "kernel/fs/udf/udf.ko", "kernel/drivers/block/loop.ko"):
        (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        (moddir / rel).write_bytes(rel.encode())
    (moddir / "modules.dep").write_text(
        "kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko\n"
        "kernel/drivers/cdrom/cdrom.ko:\n"
        "kernel/fs/udf/udf.ko: kernel/drivers/cdrom/cdrom.ko\n"
        "kernel/drivers/block/loop.ko:\n")
    (moddir / "modules.alias").write_text("alias fs-iso9660 isofs\n")
    dest = tmp_path / "overlay/usr/lib/modules/6.1"
    # squashfs is built in (not in modules.dep): skipped.
    got = add_live_modules(moddir, dest, ("isofs", "squashfs", "loop"))
    assert got == ["kernel/drivers/block/loop.ko", "kernel/drivers/cdrom/cdrom.ko",
                   "kernel/fs/isofs/isofs.ko"]
    assert (dest / "kernel/drivers/cdrom/cdrom.ko").read_bytes() == b"kernel/drivers/cdrom/cdrom.ko"
    assert not (dest / "kernel/fs/udf/udf.ko").exists()
    assert (dest / "modules.dep").read_text() == (moddir / "modules.dep").read_text()
    assert (dest / "modules.alias").is_file()


def test_info_files_read_by_rock_ridge_name(tmp_path: Path) -> None:
    """An ISO whose 8.3 names are not ours (xorriso mangles its own way): igninfo.json
    and kargs.json are read by their Rock Ridge names."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, rock_ridge="1.09")
    cfg, offset = grub_config(DEFAULT)
    files = {
        "/NESTOS/IGNINF_0.JSO;1": ("igninfo.json", json.dumps({"file": "images/ignition.img"})),
        "/NESTOS/KARGS_0.JSO;1": ("kargs.json", json.dumps({
            "default": DEFAULT, "size": KARGS_AREA_SIZE,
            "files": [{"path": "boot/grub/grub.cfg", "offset": offset}]})),
        "/IMAGES/IGNITI_0.IMG;1": ("ignition.img", bytes(256 * 1024)),
        "/BOOT/GRUB/GRUB.CFG;1": ("grub.cfg", cfg),
    }
    for d, rr in (("/NESTOS", "nestos"), ("/IMAGES", "images"), ("/BOOT", "boot"),
                  ("/BOOT/GRUB", "grub")):
        iso.add_directory(d, rr_name=rr)
    for path, (rr, data) in files.items():
        raw = data if isinstance(data, bytes) else data.encode()
        iso.add_fp(io.BytesIO(raw), len(raw), path, rr_name=rr)
    iso.write(str(tmp_path / "x.iso"))
    iso.close()
    assert check_live_iso(tmp_path / "x.iso").current == DEFAULT


@pytest.mark.parametrize(("options", "patterns", "built"), [
    ({"nestos_iso": "live.iso"}, ["basic"], None),  # --iso: that ISO, nothing built
    ({"nestos_iso": "live.iso", "nestos_image": "other.qcow2"}, ["iso.*"], None),
    ({}, ["iso.*"], "iso"),  # only iso.* scenarios: the reference ISO they boot
    ({}, ["iso.install", "basic"], "qcow2"),
    ({"nestos_image": "mine.qcow2"}, ["iso.*"], None),
])
def test_run_image_builds_no_qcow2_for_iso_machines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str],
        patterns: list[str], built: str | None) -> None:
    """`kolapy run --iso ISO` and a run of iso.* scenarios only never build the reference
    qcow2 (ISO machines do not boot it); with --iso the ISO is the run's image."""
    import argparse

    import kolapy.iso.build
    import kolapy.refimage
    from kolapy.runner import run_image

    calls: list[str] = []
    monkeypatch.setattr(kolapy.refimage, "ensure_image",
                        lambda arch: calls.append("qcow2") or tmp_path / "ref.qcow2")
    monkeypatch.setattr(kolapy.iso.build, "ensure_iso",
                        lambda arch: calls.append("iso") or tmp_path / "ref.iso")
    ns = argparse.Namespace(nestos_iso=None, nestos_image=None, kola_arch=None, tests=[],
                            exttest=[], patterns=patterns, kola_platform=None)
    for key, value in options.items():
        setattr(ns, key, str(tmp_path / value))
    image = run_image(ns, [])
    assert calls == ([built] if built else [])
    if "nestos_iso" in options:
        assert image == tmp_path / "live.iso"
    elif "nestos_image" in options:
        assert image == tmp_path / "mine.qcow2"
