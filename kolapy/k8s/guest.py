"""What the k8s suites ask of a machine: is Kubernetes installed, has a run-once unit finished."""

from __future__ import annotations

import pytest

from kolapy.k8s.recipe import NODE_BINARIES, stamp
from kolapy.machine.base import Machine


def require_kubernetes(machine: Machine) -> None:
    """SKIP the test, naming the binaries, on an image without kubeadm/kubelet/kubectl."""
    missing = [p for p in NODE_BINARIES if machine.run(f"test -x {p}").failed]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in the image (the K8S variant of the "
                    "reference image, or a NestOS image with Kubernetes)")


def wait_unit(machine: Machine, unit: str, timeout: float) -> None:
    """Wait for a run-once unit to finish and leave its stamp (fails at once if it failed).

    ``timeout`` is in seconds before emulation scaling, like every machine wait.
    """
    machine.wait_for_unit(f"{unit}.service", timeout=timeout)
    machine.succeed(f"test -e {stamp(unit)}")
