"""Accelerator choice: auto picks KVM only where a guest really runs under it."""

from __future__ import annotations

import os

import pytest

from kolapy.enums import Accel, Arch
from kolapy.errors import BadInputError
from kolapy.machine.accel import TCG_TIMEOUT_SCALE, resolve_accel, timeout_scale


@pytest.fixture
def host(tmp_path):
    """A fake host: a read-write /dev/kvm stand-in and an empty /sys/module."""
    kvm = tmp_path / "kvm"
    kvm.write_bytes(b"")
    mods = tmp_path / "module"
    mods.mkdir()
    return {"kvm_device": kvm, "sys_module": mods, "host_arch": Arch.X86_64}


def test_auto_uses_kvm_on_a_good_host(host):
    assert resolve_accel(Accel.AUTO, Arch.X86_64, **host) == Accel.KVM


def test_auto_uses_tcg_on_a_pvm_host(host):
    (host["sys_module"] / "kvm_pvm").mkdir()
    assert resolve_accel(Accel.AUTO, Arch.X86_64, **host) == Accel.TCG


def test_auto_uses_tcg_without_kvm_device(host, tmp_path):
    host["kvm_device"] = tmp_path / "absent"
    assert resolve_accel(Accel.AUTO, Arch.X86_64, **host) == Accel.TCG


@pytest.mark.skipif(os.geteuid() == 0, reason="root can open a read-only file read-write")
def test_auto_uses_tcg_when_kvm_not_writable(host):
    host["kvm_device"].chmod(0o444)
    assert resolve_accel(Accel.AUTO, Arch.X86_64, **host) == Accel.TCG


def test_auto_uses_tcg_for_foreign_arch(host):
    assert resolve_accel(Accel.AUTO, Arch.AARCH64, **host) == Accel.TCG


def test_kvm_requested_on_pvm_host_is_bad_input(host):
    (host["sys_module"] / "kvm_pvm").mkdir()
    with pytest.raises(BadInputError, match=r"--accel kvm.*PVM"):
        resolve_accel(Accel.KVM, Arch.X86_64, **host)


def test_kvm_requested_on_good_host(host):
    assert resolve_accel(Accel.KVM, Arch.X86_64, **host) == Accel.KVM


def test_tcg_is_always_tcg(host):
    assert resolve_accel(Accel.TCG, Arch.AARCH64, **host) == Accel.TCG


def test_this_host_is_pvm_so_auto_is_tcg():
    if not os.path.exists("/sys/module/kvm_pvm"):
        pytest.skip("this host is not a PVM host (no /sys/module/kvm_pvm)")
    assert resolve_accel(Accel.AUTO, Arch.X86_64) == Accel.TCG


def test_timeout_scale(monkeypatch):
    monkeypatch.delenv("KOLAPY_TIMEOUT_SCALE", raising=False)
    assert timeout_scale(Accel.TCG) == TCG_TIMEOUT_SCALE == 5.0
    assert timeout_scale(Accel.KVM) == 1.0
    monkeypatch.setenv("KOLAPY_TIMEOUT_SCALE", "2.5")
    assert timeout_scale(Accel.TCG) == 2.5
    monkeypatch.setenv("KOLAPY_TIMEOUT_SCALE", "fast")
    with pytest.raises(BadInputError, match="KOLAPY_TIMEOUT_SCALE"):
        timeout_scale(Accel.TCG)
