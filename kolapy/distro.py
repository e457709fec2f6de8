"""Distro profiles: the conventions that differ between NestOS and Fedora CoreOS."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Distro:
    """What kolapy needs to know about an Ignition + ostree distro."""

    name: str
    ssh_user: str
    journal_port: str
    """virtio-serial port the initramfs writes its journal to on emergency."""
    installer: str
    karg_prefix: str


DISTROS: dict[str, Distro] = {
    "nestos": Distro(
        "nestos", "nest", "com.nestos.ignition.journal", "nestos-installer", "nestos."
    ),
    "fcos": Distro("fcos", "core", "com.coreos.ignition.journal", "coreos-installer", "coreos."),
}


def get_distro(name: str) -> Distro:
    """Return the profile for ``name`` or raise ``ValueError`` naming the choices."""
    try:
        return DISTROS[name]
    except KeyError:
        raise ValueError(f"unknown distro {name!r} (choose {', '.join(DISTROS)})") from None
