"""kola tests ``docker.*``: the docker engine (dockerd).

Bodies live in :mod:`kolapy.containers`.  Sharing: ``docker.base``, ``docker.volume``
and ``docker.registry`` share one machine with the other container tests
(``exclusive=False``); ``docker.workflow`` restarts dockerd (restart policy) and
``docker.network`` adds a bridge network, so each gets a machine of its own.
"""

from __future__ import annotations

from typing import Any

from kolapy import Machine, kola
from kolapy.containers.engines import DOCKER
from kolapy.containers.features import check_base, check_network, check_registry, check_volume
from kolapy.containers.guest import require_engine
from kolapy.containers.ignition import container_ignition
from kolapy.containers.workflow import run_workflow

pytestmark = kola(ignition=container_ignition(), tags=("container", "docker"))


@kola(name="docker.base", exclusive=False,
      description="docker info answers; overlay2 where the kernel has it; cgroups; unit active")
def test_base(machine: Machine) -> None:
    require_engine(machine, DOCKER)
    check_base(machine, DOCKER)


@kola(name="docker.workflow", exclusive=True,
      description="the container workflow, then --restart=always across a dockerd restart")
def test_workflow(machine: Machine) -> None:
    require_engine(machine, DOCKER)
    run_workflow(machine, DOCKER)


@kola(name="docker.network", exclusive=True,
      description="two containers on a bridge network talk; a port is published where asked")
def test_network(machine: Machine) -> None:
    require_engine(machine, DOCKER)
    seen = check_network(machine, DOCKER)
    print(f"docker network: {seen}")


@kola(name="docker.volume", exclusive=False,
      description="a named volume outlives its container; a bind mount is read and written")
def test_volume(machine: Machine) -> None:
    require_engine(machine, DOCKER)
    check_volume(machine, DOCKER)


@kola(name="docker.registry", exclusive=False,
      description="push to and pull from a registry on the host (guest forward 10.0.2.100:5000)")
def test_registry(machine: Machine, host_registry: Any) -> None:
    require_engine(machine, DOCKER)
    reg = host_registry(machine)
    check_registry(machine, DOCKER, reg.address)
