"""Choosing the QEMU accelerator, and how much slower timeouts must be under TCG."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kolapy.enums import Accel, Arch
from kolapy.errors import BadInputError

log = logging.getLogger(__name__)

TCG_TIMEOUT_SCALE = 5.0
"""TCG boots are several times slower than KVM; every wait is stretched by this."""


def kvm_problem(
    arch: Arch,
    *,
    host_arch: Arch | None = None,
    kvm_device: Path = Path("/dev/kvm"),
    sys_module: Path = Path("/sys/module"),
) -> str | None:
    """Why KVM cannot run an ordinary ``arch`` guest here, or None if it can.

    The paths are parameters so tests can fake a host.
    """
    host = host_arch if host_arch is not None else _host_arch()
    if host != arch:
        return f"host is {host}, guest is {arch}"
    try:
        fd = os.open(kvm_device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"{kvm_device} cannot be opened read-write ({exc.strerror})"
    os.close(fd)
    # A nested "PVM" host exposes a /dev/kvm whose guests hang after "Probing EDD".
    if (sys_module / "kvm_pvm").exists():
        return f"{kvm_device} is a nested PVM device (kvm_pvm loaded) that hangs ordinary guests"
    return None


def resolve_accel(
    requested: Accel,
    arch: Arch,
    *,
    host_arch: Arch | None = None,
    kvm_device: Path = Path("/dev/kvm"),
    sys_module: Path = Path("/sys/module"),
) -> Accel:
    """Turn ``auto`` into ``kvm`` or ``tcg``; reject ``kvm`` where it cannot work.

    Raises :class:`BadInputError` when ``kvm`` is requested but unusable.
    """
    if requested == Accel.TCG:
        return Accel.TCG
    problem = kvm_problem(arch, host_arch=host_arch, kvm_device=kvm_device, sys_module=sys_module)
    if requested == Accel.KVM:
        if problem:
            raise BadInputError(f"--accel kvm: KVM cannot be used: {problem}")
        return Accel.KVM
    if problem:
        log.info("accelerator auto: using TCG because %s", problem)
        return Accel.TCG
    return Accel.KVM


def timeout_scale(accel: Accel) -> float:
    """The factor every timeout is multiplied by (env ``KOLAPY_TIMEOUT_SCALE`` overrides)."""
    override = os.environ.get("KOLAPY_TIMEOUT_SCALE")
    if override:
        try:
            value = float(override)
        except ValueError:
            raise BadInputError(
                f"KOLAPY_TIMEOUT_SCALE={override!r} is not a number"
            ) from None
        if value <= 0:
            raise BadInputError(f"KOLAPY_TIMEOUT_SCALE={override!r} must be positive")
        return value
    return 1.0 if accel == Accel.KVM else TCG_TIMEOUT_SCALE


def _host_arch() -> Arch:
    try:
        return Arch.host()
    except ValueError:
        # An unknown host arch can never match a guest arch.
        return None  # type: ignore[return-value]
