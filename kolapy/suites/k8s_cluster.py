"""kola test ``k8s.cluster``: a master and a worker form a Kubernetes cluster from Ignition alone.

Required tag ``k8s`` (run with ``--tag k8s``).  Two machines on kolapy's private
cluster network (10.200.0.11 and .12) boot NestOS's recipe
(:mod:`kolapy.k8s.recipe`, reference flavor), each with its own config
(``member_ignition``): the master's ``kubeadm init`` and the worker's
``kubeadm join``, with one bootstrap token in both, the run-once units started
once the boot has finished (``after_boot``).  The body waits for each
run-once unit on both machines (failing at once if one fails), for both nodes
to be Ready, then runs an etcd server (a local image) in a pod pinned to the
worker behind a ClusterIP Service and reads ``/version`` through the Service
from the master, which crosses the cluster network through the route
``kolapy-pod-routes`` keeps to the worker's podCIDR.  Each phase's time goes to
the live view (the ``progress`` fixture).  On an image without
kubeadm/kubelet/kubectl it SKIPs naming them.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import time
from collections.abc import Callable
from typing import Any

from kolapy import Machine, kola
from kolapy.containers.guest import http_get
from kolapy.ignition import Ignition
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
from kolapy.machine.cluster import Cluster, member_addresses

NAME = "k8s.cluster"
_ADDRESSES = member_addresses(2)
CLUSTER = K8sCluster(
    master=Node("k8s-master01", _ADDRESSES[0]),
    workers=(Node("k8s-node01", _ADDRESSES[1]),),
    flavor=REFERENCE,
    # every pytest process builds these configs: one token for all of them
    token=stable_bootstrap_token(NAME),
)
MASTER, WORKER = CLUSTER.master, CLUSTER.workers[0]
KUBECTL = f"sudo -n kubectl --kubeconfig={ADMIN_CONF}"
SERVER = "kolapy-etcd"
ETCD_IMAGE = f"{CLUSTER.image_repository}/etcd:{PINS.etcd_image_tag}"
CLIENT_PORT = 2379
UNIT_TIMEOUT = 30 * 60
"""Base seconds for each run-once unit (scaled for emulation like every wait)."""


def member_config(index: int, addresses: tuple[str, ...]) -> Ignition:
    """Member 0 is the master, member 1 the worker; each gets its role's recipe."""
    node = CLUSTER.nodes[index]
    if node.address != addresses[index]:
        raise ValueError(f"{node.name} is {node.address} in the recipe, "
                         f"{addresses[index]} on the cluster network")
    role = "master" if node is MASTER else "worker"
    return (machine_ignition(CLUSTER, role, node)
            .merge(only_if_installed(CLUSTER, role))
            .merge(after_boot(CLUSTER, role)))  # kubeadm's work must not hold up the boot


def server_manifest() -> dict[str, Any]:
    """An etcd server pinned to the worker, and a ClusterIP Service in front of it."""
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": SERVER, "labels": {"app": SERVER}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": WORKER.name},
            "containers": [{
                "name": "etcd", "image": ETCD_IMAGE, "imagePullPolicy": "Never",
                "command": ["etcd", "--data-dir=/data/etcd",
                            f"--listen-client-urls=http://0.0.0.0:{CLIENT_PORT}",
                            f"--advertise-client-urls=http://127.0.0.1:{CLIENT_PORT}"],
                "ports": [{"containerPort": CLIENT_PORT}],
                "readinessProbe": {"httpGet": {"path": "/version", "port": CLIENT_PORT}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVER},
        "spec": {"selector": {"app": SERVER},
                 "ports": [{"port": CLIENT_PORT, "targetPort": CLIENT_PORT}]},
    }
    return {"apiVersion": "v1", "kind": "List", "items": [pod, service]}


@kola(
    name=NAME,
    required_tag="k8s",
    tags=("k8s",),
    cluster_size=2,
    member_ignition=member_config,
    min_memory=4096,
    timeout=90 * 60,
    description="master + worker from Ignition: the worker joins, two nodes Ready, "
                "a pod on the worker reached through a Service from the master",
)
def test_cluster(cluster: Cluster, progress: Callable[..., None]) -> None:
    master, worker = cluster.machines
    for machine in (master, worker):
        require_kubernetes(machine)
    started = time.monotonic()

    def phase(what: str, machine: Machine) -> None:
        progress(f"k8s: {what} after {time.monotonic() - started:.0f} s", machine)

    for unit in (*prep_units(REFERENCE), "init-cluster", "install-cni-plugin"):
        wait_unit(master, unit, UNIT_TIMEOUT)
        phase(f"master {unit} done", master)
    for unit in (*prep_units(REFERENCE), "join-cluster"):
        wait_unit(worker, unit, UNIT_TIMEOUT)
        phase(f"worker {unit} done", worker)
    phase("worker joined", worker)
    for node in (MASTER, WORKER):
        master.wait_until_succeeds(
            f"{KUBECTL} wait --for=condition=Ready node/{node.name} --timeout=50s", 20 * 60, 60)
    phase("both nodes Ready", master)

    manifest = shlex.quote(json.dumps(server_manifest()))
    # apply is idempotent: retried, as its schema fetch (/openapi/v2) can time out on a
    # busy emulated API server (seen: 32 s, with three guests on two host cores)
    master.wait_until_succeeds(f"echo {manifest} | {KUBECTL} apply -f -", 10 * 60, 120)
    master.wait_until_succeeds(
        f"{KUBECTL} wait --for=condition=Ready pod/{SERVER} --timeout=50s", 15 * 60, 60)
    pod = json.loads(master.succeed(f"{KUBECTL} get pod {SERVER} -o json"))
    assert pod["spec"]["nodeName"] == WORKER.name, pod["spec"].get("nodeName")
    worker_cidr = master.succeed(
        f"{KUBECTL} get node {WORKER.name} -o jsonpath='{{.spec.podCIDR}}'").strip()
    pod_ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(worker_cidr), (pod_ip, worker_cidr)
    phase(f"pod {pod_ip} Ready on {WORKER.name}", master)

    # the master reaches the worker's pods over the cluster network
    route = master.wait_until_succeeds(f"ip route show {worker_cidr} | grep .", 5 * 60, 30)
    assert f"via {WORKER.address}" in route, route
    cluster_ip = master.succeed(
        f"{KUBECTL} get service {SERVER} -o jsonpath='{{.spec.clusterIP}}'").strip()
    reply = master.wait_until_succeeds(
        http_get(f"http://{cluster_ip}:{CLIENT_PORT}/version"), 5 * 60, 30)
    assert json.loads(reply)["etcdserver"] == PINS.etcd.removeprefix("v"), reply
    phase(f"Service {cluster_ip}:{CLIENT_PORT} reached from the master", master)
