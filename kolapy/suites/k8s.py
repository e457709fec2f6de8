"""kola test ``k8s.bootstrap``: one master forms a Kubernetes cluster from Ignition alone.

Required tag ``k8s`` (run with ``--tag k8s``): the machine's config is NestOS's
recipe (:mod:`kolapy.k8s.recipe`, reference flavor: containerd, images loaded
from the K8S variant's archives), and the run-once units do the rest.  The
body waits for each unit (failing at once if one fails) and its stamp, then
for the node and CoreDNS to be Ready, runs a pod to completion and reads its
log; each phase's time goes to the live view (the ``progress`` fixture).
On an image without kubeadm/kubelet/kubectl it SKIPs naming them (the units
are guarded so that such an image still boots clean).

``k8s.cluster`` (master + worker) needs one config per cluster member, which
kolapy's cluster support does not give yet (every member boots the same
config): a later session.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kolapy import Machine, kola
from kolapy.k8s.guest import require_kubernetes, wait_unit
from kolapy.k8s.recipe import (
    ADMIN_CONF,
    REFERENCE,
    K8sCluster,
    Node,
    after_boot,
    machine_ignition,
    only_if_installed,
    prep_units,
    stable_bootstrap_token,
)
from kolapy.k8s.versions import PINS

# A single machine has no private network: the node's address is its user-mode NIC.
# The token is derived, not random: pytest builds this config in the controller and
# in every xdist worker, and their machine specs (and xdist groups) must be equal.
BOOTSTRAP = K8sCluster(master=Node("k8s-master01", "10.0.2.15"), flavor=REFERENCE,
                       token=stable_bootstrap_token("k8s.bootstrap"))
KUBECTL = f"sudo -n kubectl --kubeconfig={ADMIN_CONF}"


@kola(
    name="k8s.bootstrap",
    required_tag="k8s",
    tags=("k8s",),
    ignition=machine_ignition(BOOTSTRAP, "master")
    .merge(only_if_installed(BOOTSTRAP, "master"))
    .merge(after_boot(BOOTSTRAP, "master")),
    min_memory=4096,
    timeout=60 * 60,
    description="one master from Ignition: units done, node + CoreDNS Ready, a pod's log read",
)
def test_bootstrap(machine: Machine, progress: Callable[..., None]) -> None:
    require_kubernetes(machine)
    started = time.monotonic()

    def phase(what: str) -> None:
        progress(f"k8s: {what} after {time.monotonic() - started:.0f} s", machine)

    for unit in (*prep_units(REFERENCE), "init-cluster", "install-cni-plugin"):
        wait_unit(machine, unit, 30 * 60)
        phase(f"{unit} done")
    node = BOOTSTRAP.master.name
    machine.wait_until_succeeds(
        f"{KUBECTL} wait --for=condition=Ready node/{node} --timeout=50s", 20 * 60, 60)
    phase("node Ready")
    machine.wait_until_succeeds(
        f"{KUBECTL} -n kube-system wait --for=condition=Ready pod -l k8s-app=kube-dns "
        "--timeout=50s", 20 * 60, 60)
    phase("CoreDNS Ready")
    # one node: let ordinary pods onto the control plane
    machine.succeed(f"{KUBECTL} taint nodes --all node-role.kubernetes.io/control-plane-")
    image = f"{BOOTSTRAP.image_repository}/etcd:{PINS.etcd_image_tag}"  # a local image
    machine.succeed(f"{KUBECTL} run kolapy-check --image={image} --image-pull-policy=Never "
                    "--restart=Never --command -- etcd --version")
    machine.wait_until_succeeds(
        f"{KUBECTL} wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/kolapy-check "
        "--timeout=50s", 10 * 60, 60)
    phase("pod Succeeded")
    log = machine.succeed(f"{KUBECTL} logs kolapy-check")
    assert f"etcd Version: {PINS.etcd.removeprefix('v')}" in log, log
