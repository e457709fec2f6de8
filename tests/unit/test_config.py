"""RunConfig and the shared options table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kolapy.config import RunConfig
from kolapy.enums import Accel, Arch, Firmware
from kolapy.options import OPTIONS, forward


def _get(values: dict[str, object]):
    return lambda dest, default: values.get(dest, default)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KOLAPY_IMAGE", "KOLAPY_ARCH", "KOLAPY_ACCEL"):
        monkeypatch.delenv(var, raising=False)
    cfg = RunConfig.from_options(_get({}))
    assert cfg.image is None
    assert cfg.arch is Arch.X86_64
    assert cfg.firmware is Firmware.BIOS
    assert cfg.accel is Accel.AUTO
    assert cfg.memory_mib == 2048


def test_values_and_aliases(tmp_path: Path) -> None:
    cfg = RunConfig.from_options(
        _get({"nestos_image": str(tmp_path / "x.qcow2"), "kola_arch": "arm64",
              "kola_accel": "tcg", "kola_tags": ["a", "!b"], "kola_memory": 4096})
    )
    assert cfg.image == tmp_path / "x.qcow2"
    assert cfg.arch is Arch.AARCH64
    assert cfg.accel is Accel.TCG
    assert cfg.tags == ("a", "!b")
    assert cfg.memory_mib == 4096


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kola_arch": "sparc"}, "unknown architecture 'sparc'"),
        ({"kola_accel": "hvf"}, "unknown accelerator 'hvf'"),
        ({"kola_firmware": "coreboot"}, "unknown firmware 'coreboot'"),
        ({"kola_memory": 16}, "--memory 16 MiB is too small"),
    ],
)
def test_bad_values_name_the_input(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig.from_options(_get(values))


def test_forward_round_trips_through_argparse() -> None:
    parser = argparse.ArgumentParser()
    for flag, kwargs in OPTIONS:
        parser.add_argument(flag, **kwargs)
    ns = parser.parse_args(
        ["--arch", "aarch64", "--tag", "x", "--tag", "!y", "--keep-failed", "--memory", "3000"]
    )
    args = forward(ns)
    assert args == ["--arch=aarch64", "--memory=3000", "--tag=x", "--tag=!y", "--keep-failed"]
    again = parser.parse_args(args)
    assert vars(again) == vars(ns)
