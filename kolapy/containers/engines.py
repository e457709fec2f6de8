"""The three engines and their CLI differences: ONE small table.

Everything the suites do is written once against :class:`Engine`; where podman,
docker and isula differ (binary, daemon unit, how ``info`` spells the storage
driver and cgroup settings, which optional features exist) the difference is a
field here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Engine:
    """One container engine as the suites see it."""

    name: str
    """Kola family name: ``podman``, ``docker``, ``isula``."""
    binary: str
    """The CLI on the guest's PATH."""
    daemon_unit: str | None
    """systemd service of the engine's daemon (None: daemonless)."""
    socket_unit: str | None
    """systemd socket that may activate the daemon instead of the service."""
    storage_re: str
    """Regex with one group: the storage driver in ``<binary> info`` output."""
    cgroup_driver_re: str
    """Regex with one group: the cgroup manager/driver in ``info`` output."""
    cgroup_version_re: str | None
    """Regex with one group: the cgroup version (1 or 2) in ``info``; None if not shown."""
    restart_policy: bool
    """``--restart=always`` containers come back after a daemon restart (needs a daemon)."""
    volumes: bool
    """Named volumes (``volume create``)."""
    networks: bool
    """User-defined bridge networks (``network create``)."""
    registry: bool
    """``push``/``pull`` to a plain-HTTP registry configured by the suite's Ignition."""
    image_inspect: tuple[str, ...] = ("image", "inspect")
    """Subcommand that succeeds only when the named image exists."""

    @property
    def has_daemon(self) -> bool:
        return self.daemon_unit is not None

    def storage_driver(self, info: str) -> str | None:
        """The storage driver ``info`` reports, or None if the text has none."""
        return _first(self.storage_re, info)

    def cgroup_driver(self, info: str) -> str | None:
        """The cgroup manager/driver ``info`` reports (``systemd``/``cgroupfs``)."""
        return _first(self.cgroup_driver_re, info)

    def cgroup_version(self, info: str) -> int | None:
        """The cgroup version ``info`` reports (1 or 2), or None."""
        if self.cgroup_version_re is None:
            return None
        found = _first(self.cgroup_version_re, info)
        return int(found) if found else None


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1) if match else None


PODMAN = Engine(
    name="podman", binary="podman", daemon_unit=None, socket_unit=None,
    # `podman info` is YAML: "graphDriverName: overlay", "cgroupManager: systemd",
    # "cgroupVersion: v2"
    storage_re=r"^\s*graphDriverName:\s*(\S+)",
    cgroup_driver_re=r"^\s*cgroupManager:\s*(\S+)",
    cgroup_version_re=r"^\s*cgroupVersion:\s*v?(\d)",
    restart_policy=False, volumes=True, networks=True, registry=True,
)
DOCKER = Engine(
    name="docker", binary="docker", daemon_unit="docker.service", socket_unit="docker.socket",
    # " Storage Driver: overlay2", " Cgroup Driver: systemd", " Cgroup Version: 2"
    storage_re=r"^\s*Storage Driver:\s*(\S+)",
    cgroup_driver_re=r"^\s*Cgroup Driver:\s*(\S+)",
    cgroup_version_re=r"^\s*Cgroup Version:\s*(\d)",
    restart_policy=True, volumes=True, networks=True, registry=True,
)
ISULA = Engine(
    name="isula", binary="isula", daemon_unit="isulad.service", socket_unit=None,
    # iSulad prints docker-like lines: "Storage Driver: overlay2", "Cgroup Driver: cgroupfs"
    storage_re=r"^\s*Storage Driver:\s*(\S+)",
    cgroup_driver_re=r"^\s*Cgroup Driver:\s*(\S+)",
    cgroup_version_re=r"^\s*Cgroup Version:\s*(\d)",
    restart_policy=True, volumes=False, networks=False, registry=False,
    image_inspect=("inspect",),
)

ENGINES: dict[str, Engine] = {e.name: e for e in (PODMAN, DOCKER, ISULA)}

#: Storage drivers that mean "overlay" (podman says overlay, docker/isula overlay2).
OVERLAY_DRIVERS = frozenset({"overlay", "overlay2"})
