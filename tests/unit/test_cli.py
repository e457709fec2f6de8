"""The CLI: bad input is one line, exit code 2, no traceback, no VM; check-console; list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def kolapy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kolapy.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def assert_bad_input(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("kolapy: error: ")
    assert "Traceback" not in r.stderr + r.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def tiny_image(tmp_path: Path) -> Path:
    img = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    return img


def test_missing_image(tmp_path: Path) -> None:
    missing = tmp_path / "nope.qcow2"
    assert_bad_input(kolapy("run", "basic", f"--nestos-image={missing}"), str(missing))


def test_not_a_disk_image(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a disk image\n" * 100)
    assert_bad_input(kolapy("run", "basic", f"--nestos-image={text}"), str(text))


def test_unknown_pattern(tiny_image: Path) -> None:
    assert_bad_input(kolapy("run", "nosuchtest", f"--nestos-image={tiny_image}"), "nosuchtest")


def test_invalid_ignition_json(tiny_image: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ign"
    bad.write_text('{"ignition": {"version": "3.3.0"}, ')
    assert_bad_input(kolapy("spawn", f"--nestos-image={tiny_image}", f"--ignition={bad}"), str(bad))


def test_missing_qemu(tiny_image: Path, tmp_path: Path) -> None:
    # a PATH with qemu-img but without qemu-system-x86_64
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("qemu-img",):
        os.symlink(subprocess.check_output(["which", tool], text=True).strip(), bindir / tool)
    env = {**os.environ, "PATH": f"{bindir}:{Path(sys.executable).parent}"}
    assert_bad_input(
        kolapy("run", "basic", f"--nestos-image={tiny_image}", env=env), "qemu-system-x86_64"
    )


def test_list_json_has_kola_keys() -> None:
    r = kolapy("list", "--json")
    assert r.returncode == 0, r.stderr
    tests = json.loads(r.stdout)
    basic = next(t for t in tests if t["name"] == "basic")
    for key in (
        "name",
        "description",
        "tags",
        "architectures",
        "platforms",
        "distros",
        "required_tag",
        "timeout",
        "exclusive",
    ):
        assert key in basic
    assert "ssh-port" in basic["subtests"]


def test_check_console(tmp_path: Path) -> None:
    clean = tmp_path / "clean.txt"
    clean.write_text("[    1.0] systemd[1]: Started foo.service\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("ok\n[   12.3] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    ok = kolapy("check-console", str(clean))
    assert ok.returncode == 0 and ok.stdout.strip() == f"{clean}: ok"
    r = kolapy("check-console", str(clean), str(bad))
    assert r.returncode == 1
    bad_lines = [line for line in r.stdout.splitlines() if line.startswith(str(bad))]
    assert any("Kernel panic" in line for line in bad_lines), r.stdout
    assert_bad_input(kolapy("check-console", str(tmp_path / "missing.txt")), "missing.txt")
