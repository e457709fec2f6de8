"""Top-level platforms/ (shipped in the package through kolapy/platforms) and --platform-file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kolapy.config import RunConfig
from kolapy.enums import Accel, Arch
from kolapy.machine.platform import load_platform, load_platform_file

ROOT = Path(__file__).resolve().parents[2]


def test_profiles_live_at_the_top_level_and_load_through_the_package():
    names = sorted(p.name for p in (ROOT / "platforms").glob("*.yaml"))
    assert names == ["libvirt-aarch64.yaml", "libvirt-x86_64.yaml", "qemu-aarch64.yaml",
                     "qemu-x86_64.yaml"]
    assert (ROOT / "kolapy" / "platforms").resolve() == (ROOT / "platforms").resolve()
    for platform in ("qemu", "libvirt"):
        for arch in (Arch.X86_64, Arch.AARCH64):
            p = load_platform(arch, platform)
            assert p.name == f"{platform}-{arch}" and p.arch == arch


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _shipped() -> dict:
    return yaml.safe_load((ROOT / "platforms" / "qemu-x86_64.yaml").read_text())


def test_a_valid_user_profile_is_used(tmp_path: Path):
    data = _shipped() | {"name": "lab-x86_64", "cpu": {"tcg": "max", "kvm": "host"}}
    path = _write(tmp_path, data)
    cfg = RunConfig.from_options(lambda d, default: {"kola_platform_file": str(path)}.get(
        d, default))
    assert cfg.platform_file == path
    assert cfg.profile().name == "lab-x86_64" and cfg.profile().cpu(Accel.TCG) == "max"


@pytest.mark.parametrize(("data", "needle"), [
    ("a: [1, 2\n", "not valid YAML at line 2"),
    ("- just\n- a list\n", "expected a mapping"),
    ({"name": "x"}, "missing or bad key 'firmware'"),
    ("drop:machine", "missing or bad key 'machine'"),
    ("cpu-tcg-only", "cpu has no entry for kvm"),
    ("firmware-bogus", "invalid platform profile: 'bogus' is not a valid Firmware"),
    ("aarch64", "its arch is aarch64, but the run is x86_64"),
])
def test_bad_profiles_name_the_file_and_the_problem(tmp_path: Path, data: object, needle: str):
    if data == "drop:machine":
        data = {k: v for k, v in _shipped().items() if k != "machine"}
    elif data == "cpu-tcg-only":
        data = _shipped() | {"cpu": {"tcg": "qemu64"}}
    elif data == "firmware-bogus":
        data = _shipped() | {"machine": {"bogus": "pc"}}
    elif data == "aarch64":
        data = _shipped() | {"arch": "aarch64"}
    path = _write(tmp_path, data)
    with pytest.raises(ValueError) as exc:
        load_platform_file(path, Arch.X86_64)
    assert str(exc.value).startswith(f"platform file {path}: ")
    assert needle in str(exc.value)


def test_cli_missing_platform_file_is_one_line_exit_2(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    r = subprocess.run([sys.executable, "-m", "kolapy.cli", "run", "basic",
                        f"--platform-file={missing}", f"--nestos-image={tmp_path / 'x.qcow2'}"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr
    assert lines == [f"kolapy: error: platform file {missing}: cannot read it "
                     "(No such file or directory)"], r.stderr
