"""kola's option spellings on kolapy's command line; --disk-size; the docs table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.config import RunConfig
from kolapy.disksize import disk_gib, parse_size, virtual_size
from kolapy.errors import BadInputError
from kolapy.kola_aliases import KolaOptionError, markdown_table, translate

ISSUE_LINE = ["run", "-p", "qemu", "-b", "nestos", "--qemu-image", "nestos.qcow2",
              "--qemu-firmware", "uefi", "--qemu-memory", "4096", "--qemu-size", "10G",
              "-j", "2", "basic"]


def test_the_kola_command_line_becomes_kolapys() -> None:
    assert translate(ISSUE_LINE) == [
        "run", "--distro", "nestos", "--nestos-image", "nestos.qcow2", "--firmware", "uefi",
        "--memory", "4096", "--disk-size", "10G", "--parallel", "2", "basic",
    ]


def test_inline_values_and_short_forms() -> None:
    assert translate(["run", "--qemu-image=a.qcow2", "-bfcos", "-j2", "-p=qemu"]) == [
        "run", "--nestos-image", "a.qcow2", "--distro", "fcos", "--parallel", "2",
    ]


def test_the_parsed_result_is_kolapys_own() -> None:
    from kolapy.cli import _parser

    ns = _parser().parse_args(translate(ISSUE_LINE))
    assert (ns.nestos_image, ns.kola_firmware, ns.kola_memory, ns.kola_disk_size) == (
        "nestos.qcow2", "uefi", 4096, "10G")
    assert ns.parallel == 2 and ns.kola_distro == "nestos" and ns.patterns == ["basic"]


def test_list_drops_what_only_machines_use() -> None:
    # kola's list accepts its global options and ignores the machine ones; so does kolapy's.
    assert translate(["list", "-p", "qemu", "--qemu-image", "x.qcow2", "-j", "4",
                      "--tag", "basic", "-b", "nestos"]) == [
        "list", "--tag", "basic", "--distro", "nestos"]


def test_spawn_keeps_machine_options() -> None:
    assert translate(["spawn", "--qemu-memory", "3072", "--qemu-image", "i"]) == [
        "spawn", "--memory", "3072", "--nestos-image", "i"]


@pytest.mark.parametrize(("args", "named"), [
    (["run", "--qemu-swtpm"], "--qemu-swtpm"),
    (["run", "--qemu-nvme", "basic"], "--qemu-nvme"),
    (["run", "--qemu-whatever=1"], "--qemu-whatever"),
    (["run", "--aws-region", "x"], "--aws-region"),
    (["run", "-T"], "-T"),
    (["run", "--qemu-native-4k"], "--qemu-native-4k"),
    (["run", "-p", "aws"], "-p/--platform aws"),
    (["run", "-p", "qemu-iso", "basic"], "qemu-iso needs --qemu-iso"),
    (["run", "--qemu-firmware", "uefi-secure"], "uefi-secure"),
    (["run", "--qemu-image"], "--qemu-image"),
])
def test_unsupported_kola_options_are_named(args: list[str], named: str) -> None:
    with pytest.raises(KolaOptionError, match=named.replace("/", ".")):
        translate(args)


def test_other_verbs_and_after_double_dash_are_left_alone() -> None:
    assert translate(["image", "build", "--arch", "aarch64"]) == ["image", "build", "--arch",
                                                                  "aarch64"]
    assert translate(["run", "basic", "--", "--qemu-swtpm"]) == ["run", "basic", "--",
                                                               "--qemu-swtpm"]
    assert translate(["--debug", "run", "-b", "fcos"]) == ["--debug", "run", "--distro", "fcos"]


def test_cli_exit_2_names_the_kola_option() -> None:
    r = subprocess.run([sys.executable, "-m", "kolapy.cli", "run", "--qemu-swtpm", "basic"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kolapy: error: "), r.stderr
    assert "--qemu-swtpm" in lines[0] and "Traceback" not in r.stderr


def test_docs_carry_the_table() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    assert markdown_table() in docs


def test_disk_sizes() -> None:
    assert parse_size("10G") == (False, 10 * 2**30)
    assert parse_size("+512M") == (True, 512 * 2**20)
    assert parse_size("4096") == (False, 4096)
    for bad in ("ten", "10Q", "-1G", "0G"):
        with pytest.raises(ValueError, match=bad):
            parse_size(bad)
    with pytest.raises(ValueError, match="10Q"):
        RunConfig.from_options(lambda dest, default: "10Q" if dest == "kola_disk_size"
                               else default)


def test_disk_size_against_the_image(tmp_path: Path) -> None:
    img = tmp_path / "i.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "4G"], check=True)
    assert virtual_size(img) == 4 * 2**30
    assert disk_gib(None, img) is None
    assert disk_gib("10G", img) == 10
    assert disk_gib("+5G", img) == 9
    with pytest.raises(BadInputError, match="2G is smaller"):
        disk_gib("2G", img)


def test_the_run_disk_size_is_raised_by_a_tests_min_disk(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from kolapy.scheduling import spec_for

    img = tmp_path / "i.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "4G"], check=True)
    meta = SimpleNamespace(min_memory=0, min_disk=8, ignition=None, append_kargs=(),
                           additional_disks=(), additional_nics=0)
    assert spec_for(meta, RunConfig(disk_size="10G"), img).disk_size_gib == 10
    assert spec_for(meta, RunConfig(disk_size="6G"), img).disk_size_gib == 8
    meta.min_disk = 0
    assert spec_for(meta, RunConfig(), img).disk_size_gib is None


def test_kolas_iso_platform_goes_with_its_iso() -> None:
    assert translate(["run", "-p", "qemu-iso", "--qemu-iso", "live.iso", "basic"]) == [
        "run", "--nestos-iso", "live.iso", "basic"]
    assert translate(["list", "-p", "iso"]) == ["list"]


def test_denylist_test_patterns_skip_as_denylist_entries() -> None:
    from kolapy.denylist import run_denylist

    assert translate(["run", "--blacklist-test", "podman.*", "--denylist-test=basic"]) == [
        "run", "--denylist-test", "podman.*", "--denylist-test", "basic"]
    assert run_denylist(None) is None
    (entry,) = run_denylist(None, ["podman.*"]) or []
    assert (entry.pattern, entry.tracker, entry.warn) == ("podman.*", "--denylist-test", False)
