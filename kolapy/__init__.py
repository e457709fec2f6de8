"""kolapy: kola for pytest -- boot Ignition + ostree OS images on QEMU and test them.

Everything a test author needs is importable from here::

    from kolapy import kola, Machine, Ignition
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module; imported on first use so `import kolapy` stays cheap
# and optional parts (libvirt) cost nothing until used.
_EXPORTS = {
    "kola": "kolapy.meta",
    "KolaMeta": "kolapy.meta",
    "Machine": "kolapy.machine.base",
    "MachineSpec": "kolapy.machine.spec",
    "DiskSpec": "kolapy.machine.spec",
    "CommandResult": "kolapy.result",
    "Ignition": "kolapy.ignition",
    "Arch": "kolapy.enums",
    "Firmware": "kolapy.enums",
    "Accel": "kolapy.enums",
    "expect_boot_failure": "kolapy.expect",
    "BootFailure": "kolapy.expect",
}

__all__ = [
    "Accel",
    "Arch",
    "BootFailure",
    "CommandResult",
    "DiskSpec",
    "Firmware",
    "Ignition",
    "KolaMeta",
    "Machine",
    "MachineSpec",
    "__version__",
    "expect_boot_failure",
    "kola",
]

if TYPE_CHECKING:
    from kolapy.enums import Accel, Arch, Firmware
    from kolapy.expect import BootFailure, expect_boot_failure
    from kolapy.ignition import Ignition
    from kolapy.machine.base import Machine
    from kolapy.machine.spec import DiskSpec, MachineSpec
    from kolapy.meta import KolaMeta, kola
    from kolapy.result import CommandResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kolapy' has no attribute {name!r}")
    return getattr(import_module(module), name)
