"""kola tests ``isula.*``: iSulad (NestOS's engine).  SKIP where the image has no isula.

``isula.base`` shares the container tests' machine (read-only); ``isula.workflow``
restarts isulad (restart policy) and so gets a machine of its own.
"""

from __future__ import annotations

from kolapy import Machine, kola
from kolapy.containers.engines import ISULA
from kolapy.containers.features import check_base
from kolapy.containers.guest import require_engine
from kolapy.containers.ignition import container_ignition
from kolapy.containers.workflow import run_workflow

pytestmark = kola(ignition=container_ignition(), tags=("container", "isula"))


@kola(name="isula.base", exclusive=False,
      description="isula info answers; overlay storage where the kernel has it; isulad active")
def test_base(machine: Machine) -> None:
    require_engine(machine, ISULA)
    check_base(machine, ISULA)


@kola(name="isula.workflow", exclusive=True,
      description="the container workflow, then --restart=always across an isulad restart")
def test_workflow(machine: Machine) -> None:
    require_engine(machine, ISULA)
    run_workflow(machine, ISULA)
