"""``--arch`` selects and deselects tests by their architectures as kola does (no VM)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kolapy.meta import build_meta
from kolapy.selection import SelectionContext, select

pytest_plugins = ["pytester"]

ARM_EXCLUDED = "architecture aarch64 excluded"

TESTS = """
from kolapy import kola

@kola(name="arch.not-arm", architectures=["!aarch64"])
def test_not_arm(machine):
    pass

@kola(name="arch.arm-only", architectures="aarch64")
def test_arm_only(machine):
    pass

@kola(name="arch.any")
def test_any(machine):
    pass
"""


def _metas():
    return [
        build_meta({"name": "arch.not-arm", "architectures": ["!aarch64"]}, "t"),
        build_meta({"name": "arch.arm-only", "architectures": "aarch64"}, "t"),
        build_meta({"name": "arch.any"}, "t"),
    ]


@pytest.mark.parametrize(
    ("arch", "selected", "reason"),
    [
        ("aarch64", ["arch.arm-only", "arch.any"], ("arch.not-arm", ARM_EXCLUDED)),
        ("arm64", ["arch.arm-only", "arch.any"], ("arch.not-arm", ARM_EXCLUDED)),
        ("x86_64", ["arch.not-arm", "arch.any"],
         ("arch.arm-only", "architecture x86_64 not in [aarch64]")),
    ],
)
def test_negated_architecture(arch: str, selected: list[str], reason: tuple[str, str]) -> None:
    sel = select(_metas(), ["arch.*"], SelectionContext(arch=arch))
    assert [m.full_name for m in sel.selected] == selected
    assert [(m.full_name, why) for m, why in sel.deselected] == [reason]


def test_show_skipped_names_the_architecture(pytester: pytest.Pytester, tmp_path: Path) -> None:
    image = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    pytester.makepyfile(test_arch=TESTS)
    result = pytester.runpytest_subprocess(
        f"--nestos-image={image}", f"--kola-output-dir={tmp_path / 'out'}",
        "-p", "no:cacheprovider", "--collect-only", "-q", "--arch=aarch64", "--show-skipped",
    )
    out = result.stdout.str()
    assert "kolapy: deselected arch.not-arm: architecture aarch64 excluded" in out
    assert "test_arm_only" in out and "test_any" in out
    assert "test_not_arm" not in out.replace("deselected arch.not-arm", "")
