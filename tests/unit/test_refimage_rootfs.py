"""Unit tests of the root file system step: the mmdebstrap command and .deb repacking."""

from __future__ import annotations

import lzma
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kolapy.enums import Arch
from kolapy.refimage import debrepack, foreign, rootfs, tools
from kolapy.refimage.recipe import recipe_for


def _command(arch: Arch, host: Arch, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict]:
    monkeypatch.setattr(Arch, "host", staticmethod(lambda: host))
    return rootfs.mmdebstrap_command(recipe_for(arch), Path("/r"), Path("/p.tsv"))


def test_native_build_lets_mmdebstrap_install_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    argv, env = _command(Arch.X86_64, Arch.X86_64, monkeypatch)
    include = next(a for a in argv if a.startswith("--include="))
    assert "linux-image-cloud-amd64" in include and "openssh-server" in include
    assert not any(a.startswith("--extract-hook=") for a in argv)
    assert "--dpkgopt=force-unsafe-io" in argv
    assert f"--hook-dir={rootfs.MERGED_USR_HOOKS}" in argv
    assert env == {"INITRD": "No"}
    # The essential hook still runs (helper stubs), with no Python and no packages.
    essential = next(a for a in argv if a.startswith("--essential-hook="))
    assert essential.endswith("\"$1\" ''")


def test_foreign_build_installs_repacked_debs_from_its_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, env = _command(Arch.AARCH64, Arch.X86_64, monkeypatch)
    assert not any(a.startswith("--include=") for a in argv)
    extract = next(a for a in argv if a.startswith("--extract-hook="))
    assert "kolapy.refimage.debrepack" in extract
    essential = next(a for a in argv if a.startswith("--essential-hook="))
    assert "essential.sh" in essential and "linux-image-cloud-arm64" in essential
    assert env["KOLAPY_DRACUT_DRIVERS"] == " ".join(foreign.FOREIGN_DRACUT_DRIVERS)
    assert "PYTHONPATH" in env
    assert env["KOLAPY_RTLD"] == "/lib/ld-linux-aarch64.so.1"  # dracut's ldd stand-in
    # Positional arguments last: suite, target, mirrors.
    assert argv[-5:-3] == ["bookworm", "/r"]


def test_no_package_pulls_python() -> None:
    # cloud-guest-utils (growpart) depended on python3, whose byte-compilation under
    # qemu-user cost minutes; growfs uses sfdisk instead.
    for arch in (Arch.X86_64, Arch.AARCH64):
        assert "cloud-guest-utils" not in recipe_for(arch).all_packages


def _ar(*members: tuple[bytes, bytes]) -> bytes:
    return debrepack.AR_MAGIC + b"".join(debrepack._member(n, c) for n, c in members)


def test_repack_decompresses_data_and_keeps_the_rest(tmp_path: Path) -> None:
    data = b"x" * 1001  # odd size: ar pads members to 2 bytes
    deb = tmp_path / "a.deb"
    deb.write_bytes(_ar((b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"CTRL"),
                        (b"data.tar.xz", lzma.compress(data))))
    assert debrepack.repack(deb) is True
    members = debrepack._members(deb.read_bytes())
    assert members == [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"CTRL"),
                       (b"data.tar", data)]
    assert debrepack.repack(deb) is False  # already plain


def test_repack_rejects_a_non_ar_file(tmp_path: Path) -> None:
    bad = tmp_path / "b.deb"
    bad.write_bytes(b"not an archive")
    with pytest.raises(ValueError):
        debrepack.repack(bad)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_repacked_deb_has_the_same_files_for_dpkg(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: kolapy-test\nVersion: 1\nArchitecture: all\n"
        "Maintainer: k <k@example.org>\nDescription: test\n"
    )
    (pkg / "usr/share/kolapy").mkdir(parents=True)
    (pkg / "usr/share/kolapy/f").write_text("hello\n" * 100)
    deb = tmp_path / "kolapy-test.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "--root-owner-group", "-b", pkg, deb],
                   check=True, capture_output=True)
    before = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], check=True,
                            capture_output=True).stdout
    assert debrepack.repack_dir(tmp_path, jobs=1) == 1
    after = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], check=True,
                           capture_output=True).stdout
    assert after == before
    info = subprocess.run(["dpkg-deb", "-f", deb, "Package"], check=True,
                          capture_output=True, text=True).stdout
    assert info.strip() == "kolapy-test"


def test_run_timestamps_each_output_line(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    tools.run(["sh", "-c", "echo one; echo two"], log=log, timestamps=True)
    lines = log.read_text().splitlines()
    assert [re.fullmatch(r" *\d+\.\d (\w+)", line)[1] for line in lines[-2:]] == ["one", "two"]
