"""kola tests ``podman.*``: the podman engine (rootful and rootless).

Bodies live in :mod:`kolapy.containers` (written once for every engine).  Sharing:
read-only or self-cleaning tests run on ONE shared machine (``exclusive=False``,
same Ignition as every container test); a test that changes networking
(``podman.network-single``: a new bridge and its firewall rules) gets its own.
"""

from __future__ import annotations

from typing import Any

from kolapy import Machine, kola
from kolapy.containers.engines import PODMAN
from kolapy.containers.features import (
    check_base,
    check_network,
    check_registry,
    check_rootless,
    check_volume,
)
from kolapy.containers.guest import require_engine
from kolapy.containers.ignition import container_ignition
from kolapy.containers.workflow import run_workflow

pytestmark = kola(ignition=container_ignition(), tags=("container", "podman"))


@kola(name="podman.base", exclusive=False,
      description="podman info answers; overlay storage where the kernel has it; cgroups agree")
def test_base(machine: Machine) -> None:
    require_engine(machine, PODMAN)
    check_base(machine, PODMAN)


@kola(name="podman.workflow", exclusive=False,
      description="run/ps/exec/cp/logs/inspect/export/import/save/load/stop/rm/rmi (no daemon)")
def test_workflow(machine: Machine) -> None:
    require_engine(machine, PODMAN)
    run_workflow(machine, PODMAN)


@kola(name="podman.network-single", exclusive=True,
      description="two containers on a bridge network talk; a port is published where asked")
def test_network_single(machine: Machine) -> None:
    require_engine(machine, PODMAN)
    seen = check_network(machine, PODMAN)
    print(f"podman network: {seen}")


@kola(name="podman.rootless", exclusive=False,
      description="the SSH user runs a container without root (subuid/subgid)")
def test_rootless(machine: Machine) -> None:
    require_engine(machine, PODMAN)
    check_rootless(machine, PODMAN)


@kola(name="podman.volume", exclusive=False,
      description="a named volume outlives its container; a bind mount is read and written")
def test_volume(machine: Machine) -> None:
    require_engine(machine, PODMAN)
    check_volume(machine, PODMAN)


@kola(name="podman.registry", exclusive=False,
      description="push to and pull from a registry on the host (guest forward 10.0.2.100:5000)")
def test_registry(machine: Machine, host_registry: Any) -> None:
    require_engine(machine, PODMAN)
    reg = host_registry(machine)
    check_registry(machine, PODMAN, reg.address)
