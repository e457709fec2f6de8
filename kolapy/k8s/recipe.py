"""NestOS's Kubernetes-by-Ignition recipe, as code.

NestOS documents ("Deploy the kubernetes cluster based on NestOS", NestOS
22.09, Kubernetes v1.23.10, iSulad 2.0.16) one Butane config per role.  Every
machine gets: its hostname, ``/etc/hosts`` naming the cluster, the sysctls
``/etc/sysctl.d/kubernetes.conf``, the CRI's config (iSulad's
``/etc/isulad/daemon.json``, systemd cgroup driver, CNI), a kubelet drop-in
``10-kubeadm.conf``, ``/etc/localtime``, and run-once units, each guarded by
and leaving a stamp under ``/var/log/``: ``set-kernel-para``,
``pull-images``, ``disable-selinux``, ``set-time-sync``; the master then
``init-cluster`` (``kubeadm init --config=/root/init-config.yaml
--upload-certs``) and ``install-cni-plugin``; a worker ``join-cluster``
(``kubeadm join --config=/root/join-config.yaml``).

:func:`machine_ignition` produces the same for one machine of a
:class:`K8sCluster`, on one of two :class:`Flavor` s:

- ``NESTOS``: the documented recipe (iSulad, images pulled from the image
  repository, SELinux switched off, chrony synchronised, Calico from its URL).
- ``REFERENCE``: kolapy's reference image with the K8S variant: containerd
  (config.toml, the same settings as daemon.json's), images *loaded* from the
  local OCI archives the variant ships (``load-images``; no network), no
  SELinux or chrony units (the image has neither), and a bridge CNI config from
  Debian's plugins instead of Calico (which needs the internet), with a unit
  routing the other nodes' podCIDRs over the cluster network
  (``kolapy-pod-routes``).

Deliberate differences from the document, on both flavors: kubeadm's config
API is ``kubeadm.k8s.io/v1beta4`` (the document's v1beta2/v1beta3 are gone
from the pinned Kubernetes; the same fields in v1beta4's shape); kolapy
generates the bootstrap token and puts it in the master's InitConfiguration
(the document reads it from ``kubeadm token list`` by hand); kubeadm init's
and join's timeouts are stretched for emulation (``INIT_TIMEOUTS``,
``JOIN_TIMEOUTS``); the controller manager and the scheduler of the one
control-plane node run without leader election (``SINGLE_MASTER_ARGS``);
``join-cluster`` waits until the master takes the
bootstrap token before it runs kubeadm join (machines boot together); each node's
kubelet gets ``node-ip`` (kolapy's machines all have 10.0.2.15 on their SSH
NIC, the cluster network is the second NIC); the harness configures users,
SSH keys and the private network address itself (no ``passwd`` or
NetworkManager connection here).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

import yaml

from kolapy.ignition import Ignition
from kolapy.k8s.versions import PINS

ROLES = ("master", "worker")
TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
VOLUME_PLUGIN_DIR = "/opt/libexec/kubernetes/kubelet-plugins/volume/exec/"
CALICO_URL = "https://docs.projectcalico.org/v3.19/manifests/calico.yaml"
IMAGE_ARCHIVE_DIR = "/usr/share/kolapy/k8s-images"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
INIT_CONFIG = "/root/init-config.yaml"
JOIN_CONFIG = "/root/join-config.yaml"
WAIT_MASTER_SCRIPT = "/root/wait-for-master.sh"
SYSCTL_CONF = "/etc/sysctl.d/kubernetes.conf"
KUBELET_DROPIN = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"

# kubeadm init's waits, stretched for emulated machines (kubeadm's own defaults:
# control plane 4 min, kubelet 4 min, API calls 1 min).
INIT_TIMEOUTS = (
    ("controlPlaneComponentHealthCheck", "30m0s"),
    ("kubeletHealthCheck", "15m0s"),
    ("kubernetesAPICall", "20m0s"),  # 5m: an emulated apiserver did not answer a POST in time
    ("etcdAPICall", "5m0s"),
)

# kubeadm join's waits after discovery (the document's discovery timeout, 5 min,
# stays: join-cluster starts discovery only once the master takes the token).
JOIN_TIMEOUTS = (
    ("discovery", "5m0s"),
    ("tlsBootstrap", "15m0s"),
    ("kubeletHealthCheck", "15m0s"),
    ("kubernetesAPICall", "5m0s"),
)

# The cluster has one control-plane node, so the controller manager and the
# scheduler need no leader election.  With it, an emulated API server under load
# (5 s lease requests, a 10 s renew deadline) made both exit ("leaderelection
# lost") over and over, and the worker's TLS bootstrap waited for a CSR signer
# that kept dying (seen: k8s.* -j 2, three guests on two host cores).
SINGLE_MASTER_ARGS = {"leader-elect": "false"}

SYSCTLS = (
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.ipv4.ip_forward", "1"),
)


def new_bootstrap_token() -> str:
    """A kubeadm bootstrap token (``[a-z0-9]{6}.[a-z0-9]{16}``) from a CSPRNG."""
    alphabet = string.ascii_lowercase + string.digits
    pick = "".join(secrets.choice(alphabet) for _ in range(22))
    return f"{pick[:6]}.{pick[6:]}"


def stable_bootstrap_token(seed: str) -> str:
    """A bootstrap token derived from ``seed``: the same in every process.

    For a test suite's cluster, whose configs are built where pytest collects it
    (the controller and each xdist worker): a random token would make each
    process's config, machine spec and xdist group differ.  The token only lets a
    node join that cluster, on kolapy's private network, for 24 hours.
    """
    alphabet = string.ascii_lowercase + string.digits
    digest = hashlib.sha256(f"kolapy bootstrap token: {seed}".encode()).digest()
    pick = "".join(alphabet[b % len(alphabet)] for b in digest[:22])
    return f"{pick[:6]}.{pick[6:]}"


@dataclass(frozen=True)
class Node:
    """One machine of the cluster: its hostname and its address on the cluster network."""

    name: str
    address: str


@dataclass(frozen=True)
class Flavor:
    """What differs between NestOS and the reference image; the recipe is written once."""

    name: str
    cri: str  # "isulad" | "containerd"
    cri_socket: str  # kubeadm's nodeRegistration.criSocket
    cri_config_path: str
    images_unit: str  # pull-images (from the image repository) | load-images (local archives)
    selinux: bool  # disable-selinux.service
    chrony: bool  # set-time-sync.service
    cni_bin_dir: str


NESTOS = Flavor(
    name="nestos",
    cri="isulad",
    cri_socket="/var/run/isulad.sock",
    cri_config_path="/etc/isulad/daemon.json",
    images_unit="pull-images",
    selinux=True,
    chrony=True,
    cni_bin_dir="/opt/cni/bin",
)
REFERENCE = Flavor(
    name="reference",
    cri="containerd",
    cri_socket="unix:///run/containerd/containerd.sock",
    cri_config_path="/etc/containerd/config.toml",
    images_unit="load-images",
    selinux=False,
    chrony=False,
    cni_bin_dir="/usr/lib/cni",  # Debian's containernetworking-plugins
)
FLAVORS = {f.name: f for f in (NESTOS, REFERENCE)}


@dataclass(frozen=True)
class K8sCluster:
    """Everything the recipe needs to know about one cluster."""

    master: Node
    workers: tuple[Node, ...] = ()
    flavor: Flavor = REFERENCE
    pod_cidr: str = "10.100.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    image_repository: str = "registry.k8s.io"
    token: str = field(default_factory=new_bootstrap_token)
    kubernetes_version: str = PINS.kubernetes
    dns_domain: str = "cluster.local"

    def __post_init__(self) -> None:
        if not TOKEN_RE.match(self.token):
            raise ValueError(f"bootstrap token {self.token!r} is not [a-z0-9]{{6}}.[a-z0-9]{{16}}")
        for cidr in (self.pod_cidr, self.service_cidr):
            ipaddress.ip_network(cidr)  # ValueError names it
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        for node in self.nodes:
            ipaddress.ip_address(node.address)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return (self.master, *self.workers)

    @property
    def endpoint(self) -> str:
        """The API server endpoint (``controlPlaneEndpoint``)."""
        return f"{self.master.address}:6443"

    @property
    def pause_image(self) -> str:
        return f"{self.image_repository}/pause:{PINS.pause}"

    @property
    def coredns_repository(self) -> str:
        return f"{self.image_repository}/coredns"

    def images(self) -> list[str]:
        """The images kubeadm deploys (what ``kubeadm config images list`` names)."""
        repo, kube = self.image_repository, self.kubernetes_version
        control = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
        return [
            *(f"{repo}/{name}:{kube}" for name in control),
            f"{self.coredns_repository}/coredns:{PINS.coredns}",
            self.pause_image,
            f"{repo}/etcd:{PINS.etcd_image_tag}",
        ]


# -- files -------------------------------------------------------------------


def hosts_file(cluster: K8sCluster) -> str:
    lines = [
        "127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4",
        "::1         localhost localhost.localdomain localhost6 localhost6.localdomain6",
    ]
    lines += [f"{n.address} {n.name}" for n in cluster.nodes]
    return "\n".join(lines) + "\n"


def sysctl_conf() -> str:
    return "".join(f"{key}={value}\n" for key, value in SYSCTLS)


def isulad_daemon_json(cluster: K8sCluster) -> str:
    """iSulad's daemon.json as NestOS documents it (systemd cgroup driver, CNI)."""
    config: dict[str, Any] = {
        "exec-opts": ["native.cgroupdriver=systemd"],
        "group": "isula",
        "default-runtime": "lcr",
        "graph": "/var/lib/isulad",
        "state": "/var/run/isulad",
        "engine": "lcr",
        "log-level": "ERROR",
        "pidfile": "/var/run/isulad.pid",
        "log-opts": {
            "log-file-mode": "0600",
            "log-path": "/var/lib/isulad",
            "max-file": "1",
            "max-size": "30KB",
        },
        "log-driver": "stdout",
        "container-log": {"driver": "json-file"},
        "hook-spec": "/etc/default/isulad/hooks/default.json",
        "start-timeout": "2m",
        "storage-driver": "overlay2",
        "storage-opts": ["overlay2.override_kernel_check=true"],
        "registry-mirrors": ["docker.io"],
        "insecure-registries": [cluster.image_repository],
        "pod-sandbox-image": cluster.pause_image,
        "native.umask": "secure",
        "network-plugin": "cni",
        "cni-bin-dir": NESTOS.cni_bin_dir,
        "cni-conf-dir": "/etc/cni/net.d",
        "image-layer-check": False,
        "use-decrypted-key": True,
        "insecure-skip-verify-enforce": False,
        "cri-runtimes": {"kata": "io.containerd.kata.v2"},
    }
    return json.dumps(config, indent=4) + "\n"


def containerd_config_toml(cluster: K8sCluster) -> str:
    """containerd 2.x's config with daemon.json's settings: systemd cgroups, sandbox image, CNI."""
    cri = "io.containerd.cri.v1"
    return (
        "# kolapy: NestOS's iSulad daemon.json settings, for containerd 2.x\n"
        "version = 4\n"  # containerd 2.4 (version 3 is migrated, with a warning)
        "root = '/var/lib/containerd'\n"
        "state = '/run/containerd'\n\n"
        f"[plugins.'{cri}.images'.pinned_images]\n"
        f"  sandbox = '{cluster.pause_image}'\n\n"
        f"[plugins.'{cri}.runtime'.containerd.runtimes.runc]\n"
        "  runtime_type = 'io.containerd.runc.v2'\n\n"
        f"[plugins.'{cri}.runtime'.containerd.runtimes.runc.options]\n"
        "  SystemdCgroup = true\n\n"
        f"[plugins.'{cri}.runtime'.cni]\n"
        f"  bin_dirs = ['{REFERENCE.cni_bin_dir}']\n"
        "  conf_dir = '/etc/cni/net.d'\n"
    )


def kubelet_dropin() -> str:
    """kubeadm's kubelet drop-in, as NestOS ships it in the Ignition config."""
    return (
        "# Note: This dropin only works with kubeadm and kubelet v1.11+\n"
        "[Service]\n"
        'Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/'
        'bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"\n'
        'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\n'
        "# written by kubeadm init / kubeadm join: KUBELET_KUBEADM_ARGS\n"
        "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n"
        "# the user's last-resort overrides: KUBELET_EXTRA_ARGS\n"
        "EnvironmentFile=-/etc/sysconfig/kubelet\n"
        "ExecStart=\n"
        "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
        "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n"
    )


def _args(values: dict[str, str]) -> list[dict[str, str]]:
    """v1beta4's extraArgs shape: a list of name/value pairs."""
    return [{"name": k, "value": v} for k, v in values.items()]


def init_configuration(cluster: K8sCluster) -> list[dict[str, Any]]:
    """The master's kubeadm InitConfiguration and ClusterConfiguration documents."""
    master = cluster.master
    init = {
        "apiVersion": KUBEADM_API,
        "kind": "InitConfiguration",
        "bootstrapTokens": [
            {
                "token": cluster.token,
                "ttl": "24h0m0s",
                "groups": ["system:bootstrappers:kubeadm:default-node-token"],
                "usages": ["signing", "authentication"],
            }
        ],
        "localAPIEndpoint": {"advertiseAddress": master.address, "bindPort": 6443},
        # kubeadm's defaults (4 min for the control plane) are for real hardware
        "timeouts": dict(INIT_TIMEOUTS),
        "nodeRegistration": {
            "criSocket": cluster.flavor.cri_socket,
            "name": master.name,
            "imagePullPolicy": "IfNotPresent",
            "kubeletExtraArgs": _args(
                {"volume-plugin-dir": VOLUME_PLUGIN_DIR, "node-ip": master.address}
            ),
        },
    }
    config = {
        "apiVersion": KUBEADM_API,
        "kind": "ClusterConfiguration",
        "controllerManager": {"extraArgs": _args({"flex-volume-plugin-dir": VOLUME_PLUGIN_DIR,
                                                  **SINGLE_MASTER_ARGS})},
        "scheduler": {"extraArgs": _args(SINGLE_MASTER_ARGS)},
        "kubernetesVersion": cluster.kubernetes_version,
        "imageRepository": cluster.image_repository,
        "controlPlaneEndpoint": cluster.endpoint,
        "networking": {
            "serviceSubnet": cluster.service_cidr,
            "podSubnet": cluster.pod_cidr,
            "dnsDomain": cluster.dns_domain,
        },
        "dns": {"imageRepository": cluster.coredns_repository, "imageTag": PINS.coredns},
    }
    return [init, config]


def join_configuration(cluster: K8sCluster, worker: Node) -> dict[str, Any]:
    """A worker's kubeadm JoinConfiguration."""
    return {
        "apiVersion": KUBEADM_API,
        "kind": "JoinConfiguration",
        "caCertPath": "/etc/kubernetes/pki/ca.crt",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": cluster.endpoint,
                "token": cluster.token,
                "unsafeSkipCAVerification": True,
            },
            "tlsBootstrapToken": cluster.token,
        },
        "timeouts": dict(JOIN_TIMEOUTS),
        "nodeRegistration": {
            "criSocket": cluster.flavor.cri_socket,
            "imagePullPolicy": "IfNotPresent",
            "name": worker.name,
            "taints": None,
            "kubeletExtraArgs": _args(
                {"volume-plugin-dir": VOLUME_PLUGIN_DIR, "node-ip": worker.address}
            ),
        },
    }


def wait_for_master_script(cluster: K8sCluster) -> str:
    """A worker's wait until the master's API server takes the cluster's bootstrap token.

    The token authenticates from kubeadm init's bootstrap-token phase on, the phase
    that also publishes cluster-info, so kubeadm join's discovery can start then.
    The token also keeps kubectl from prompting for a user name (an anonymous
    kubectl does, and fails on a unit's empty stdin); ``/readyz`` is allowed to
    every authenticated user.  Root-only: it holds the token.
    """
    return (
        "#!/bin/sh\n"
        "# kolapy: wait until the master accepts this cluster's bootstrap token\n"
        f"until kubectl --server=https://{cluster.endpoint} --insecure-skip-tls-verify \\\n"
        f"    --request-timeout=10s --token={cluster.token} get --raw /readyz \\\n"
        "    </dev/null >/dev/null 2>&1; do\n"
        "  sleep 10\n"
        "done\n"
    )


def to_yaml(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)


def pull_images_script(cluster: K8sCluster) -> str:
    """NestOS's pull_images.sh: pull each image from the repository, then the stamp."""
    lines = ["#!/bin/sh", "set -e"]
    lines += [f"isula pull {image}" for image in cluster.images()]
    lines.append("touch /var/log/pull-images.stamp")
    return "\n".join(lines) + "\n"


def load_images_script() -> str:
    """The reference image's counterpart: import the variant's OCI archives into containerd."""
    return (
        "#!/bin/sh\n"
        "set -e\n"
        f"for archive in {IMAGE_ARCHIVE_DIR}/*.tar; do\n"
        '    ctr --namespace k8s.io images import --local "$archive"\n'
        "done\n"
        "touch /var/log/load-images.stamp\n"
    )


def bridge_cni_script(kubeconfig: str) -> str:
    """Write a bridge CNI config for this node's pod CIDR (Debian's plugins; no images)."""
    return (
        "#!/bin/sh\n"
        "# kolapy: this node's pod network, from its podCIDR, with Debian's CNI plugins\n"
        "set -eu\n"
        f"export KUBECONFIG={kubeconfig}\n"
        "node=$(cat /etc/hostname)\n"
        "cidr=\n"
        "for i in $(seq 300); do\n"
        "    cidr=$(kubectl get node \"$node\" -o jsonpath='{.spec.podCIDR}' 2>/dev/null) || true\n"
        '    [ -n "$cidr" ] && break\n'
        "    sleep 2\n"
        "done\n"
        '[ -n "$cidr" ] || { echo "no podCIDR for node $node" >&2; exit 1; }\n'
        "mkdir -p /etc/cni/net.d\n"
        "cat > /etc/cni/net.d/10-kolapy-bridge.conflist <<EOF\n"
        '{"cniVersion": "1.0.0", "name": "kolapy-pods", "plugins": [\n'
        ' {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,\n'
        '  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]],\n'
        '           "routes": [{"dst": "0.0.0.0/0"}]}},\n'
        ' {"type": "portmap", "capabilities": {"portMappings": true}}]}\n'
        "EOF\n"
    )


POD_ROUTES_UNIT = "kolapy-pod-routes"
POD_ROUTES_SCRIPT = "/root/pod-routes.sh"


def pod_routes_script(node: Node, kubeconfig: str, service_cidr: str) -> str:
    """Route every other node's podCIDR via its address on the cluster network.

    First it routes the Service network out of the cluster NIC: kolapy's machines
    have no default route (no internet), and a node's own connection to a
    ClusterIP needs a route before kube-proxy's rules rewrite its destination
    (pods need none: their packets are rewritten as they enter the node).

    The bridge CNI only reaches pods of its own node; this is the rest of the
    reference flavor's pod network (Calico does it on NestOS).  It waits for the
    kubeconfig (written by kubeadm init/join) and the API server, then watches the nodes and adds a
    route for each other node as soon as the controller manager gives it a podCIDR
    (which it does as nodes register, so the master learns of a worker that joins
    later).  The watch ending (an API server restart) ends the script: systemd
    starts it again.
    """
    jsonpath = ('{.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}'
                '{"\\n"}')
    return (
        "#!/bin/sh\n"
        "# kolapy: routes to the other nodes' pod networks, over the cluster network\n"
        f"export KUBECONFIG={kubeconfig}\n"
        f"self={node.address}\n"
        "until dev=$(ip -o -4 addr show to \"$self\" 2>/dev/null | awk '{print $2; exit}') && "
        '[ -n "$dev" ]; do sleep 2; done\n'
        f'ip route replace {service_cidr} dev "$dev" src "$self" && '
        f'echo "route {service_cidr} dev $dev"\n'
        'until [ -s "$KUBECONFIG" ] && kubectl get nodes >/dev/null 2>&1; do sleep 5; done\n'
        f"kubectl get nodes --watch -o jsonpath='{jsonpath}' |\n"
        "while read -r cidr via; do\n"
        '    if [ -n "$cidr" ] && [ -n "$via" ] && [ "$via" != "$self" ]; then\n'
        '        ip route replace "$cidr" via "$via" && echo "route $cidr via $via"\n'
        "    fi\n"
        "done\n"
    )


POD_ROUTES_SERVICE = (
    "[Unit]\n"
    "Description=kolapy: routes to the other nodes' pod networks\n"
    "Wants=network-online.target\n"
    "After=network-online.target kubelet.service\n\n"
    "[Service]\n"
    f"ExecStart=/bin/sh {POD_ROUTES_SCRIPT}\n"
    "Restart=always\n"
    "RestartSec=10\n\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n"
)


def pod_network_units(cluster: K8sCluster) -> dict[str, str]:
    """Units besides the run-once ones that the flavor's pod network needs (name -> contents)."""
    return {} if cluster.flavor is NESTOS else {POD_ROUTES_UNIT: POD_ROUTES_SERVICE}


# -- units -------------------------------------------------------------------


def _oneshot(description: str, body: list[str], *, unit: list[str] | None = None) -> str:
    return (
        "[Unit]\n"
        f"Description={description}\n"
        + "".join(f"{line}\n" for line in unit or [])
        + "\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        + "".join(f"{line}\n" for line in body)
        + "\n[Install]\nWantedBy=multi-user.target\n"
    )


KUBELET_UNIT = (
    "[Unit]\n"
    "Description=kubelet: The Kubernetes Node Agent\n"
    "Documentation=https://kubernetes.io/docs/\n"
    "Wants=network-online.target\n"
    "After=network-online.target\n\n"
    "[Service]\n"
    "ExecStart=/usr/bin/kubelet\n"
    "Restart=always\n"
    "StartLimitInterval=0\n"
    "RestartSec=10\n\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n"
)


def stamp(unit: str) -> str:
    """The stamp a run-once unit leaves (NestOS's names)."""
    name = {"init-cluster": "init-k8s-cluster"}.get(unit, unit)
    return f"/var/log/{name}.stamp"


def prep_units(flavor: Flavor) -> list[str]:
    """The run-once units every node runs before kubeadm (in NestOS's order)."""
    units = ["set-kernel-para", flavor.images_unit]
    if flavor.selinux:
        units.append("disable-selinux")
    if flavor.chrony:
        units.append("set-time-sync")
    return units


def run_once_units(cluster: K8sCluster, role: str, node: Node) -> dict[str, str]:
    """Unit name (without ``.service``) -> contents, for ``role``."""
    flavor = cluster.flavor
    units: dict[str, str] = {
        "set-kernel-para": _oneshot(
            "set kernel para for Kubernetes",
            [
                "ExecStart=modprobe br_netfilter",
                f"ExecStart=sysctl -p {SYSCTL_CONF}",
                f"ExecStart=/bin/touch {stamp('set-kernel-para')}",
            ],
            unit=[f"ConditionPathExists=!{stamp('set-kernel-para')}"],
        ),
    }
    images = flavor.images_unit
    script = "/root/pull_images.sh" if images == "pull-images" else "/root/load_images.sh"
    units[images] = _oneshot(
        f"{'pull' if images == 'pull-images' else 'load'} images for kubernetes",
        [
            f"ExecStart=systemctl start {flavor.cri}",
            f"ExecStart=systemctl enable {flavor.cri}",
            f"ExecStart=sh {script}",
        ],
        unit=[f"ConditionPathExists=!{stamp(images)}"],
    )
    if flavor.selinux:
        units["disable-selinux"] = _oneshot(
            "disable selinux for kubernetes",
            [
                "ExecStart=bash -c \"sed -i 's#SELINUX=enforcing#SELINUX=disabled#g' "
                '/etc/selinux/config"',
                "ExecStart=setenforce 0",
                f"ExecStart=/bin/touch {stamp('disable-selinux')}",
            ],
            unit=[f"ConditionPathExists=!{stamp('disable-selinux')}"],
        )
    if flavor.chrony:
        if role == "master":
            segment = ipaddress.ip_network(f"{cluster.master.address}/24", strict=False)
            sync = [
                "ExecStart=bash -c \"sed -i '3aserver ntp1.aliyun.com iburst' /etc/chrony.conf\"",
                f"ExecStart=bash -c \"sed -i '24aallow {segment}' /etc/chrony.conf\"",
                "ExecStart=bash -c \"sed -i '26alocal stratum 10' /etc/chrony.conf\"",
            ]
        else:
            sync = [
                f"ExecStart=bash -c \"sed -i '3aserver {cluster.master.address}' /etc/chrony.conf\""
            ]
        units["set-time-sync"] = _oneshot(
            "set time sync for kubernetes",
            [*sync, "ExecStart=systemctl restart chronyd.service",
             f"ExecStart=/bin/touch {stamp('set-time-sync')}"],
            unit=[f"ConditionPathExists=!{stamp('set-time-sync')}"],
        )
    prep = prep_units(flavor)
    needs = [
        f"Requires={' '.join(u + '.service' for u in prep)}",
        f"After={' '.join(u + '.service' for u in prep)}",
        *(f"ConditionPathExists={stamp(u)}" for u in prep),
    ]
    if role == "master":
        units["init-cluster"] = _oneshot(
            "init kubernetes cluster",
            [
                f"ExecStart=kubeadm init --config={INIT_CONFIG} --upload-certs",
                f"ExecStart=/bin/touch {stamp('init-cluster')}",
            ],
            unit=[*needs, f"ConditionPathExists=!{stamp('init-cluster')}"],
        )
        if flavor is NESTOS:
            cni = [
                f'ExecStart=bash -c "curl {CALICO_URL} -o /root/calico.yaml"',
                "ExecStart=/bin/sleep 6",
                "ExecStart=bash -c \"sed -i 's#usr/libexec/#opt/libexec/#g' /root/calico.yaml\"",
                f"ExecStart=kubectl apply -f /root/calico.yaml --kubeconfig={ADMIN_CONF}",
            ]
        else:
            cni = ["ExecStart=sh /root/install-cni.sh"]
        units["install-cni-plugin"] = _oneshot(
            "install cni network plugin for kubernetes",
            [*cni, f"ExecStart=/bin/touch {stamp('install-cni-plugin')}"],
            unit=[
                "Requires=init-cluster.service",
                "After=init-cluster.service",
                f"ConditionPathExists=!{stamp('install-cni-plugin')}",
            ],
        )
    else:
        # kolapy boots a cluster's machines together, and the master's init takes
        # many minutes under emulation: wait for the master (wait_for_master_script)
        # before kubeadm join starts its 5-minute discovery.
        body = [
            f"ExecStartPre=/bin/sh {WAIT_MASTER_SCRIPT}",
            f"ExecStart=kubeadm join --config={JOIN_CONFIG}",
        ]
        if flavor is not NESTOS:
            body.append("ExecStart=sh /root/install-cni.sh")
        units["join-cluster"] = _oneshot(
            "node join kubernetes cluster",
            [*body, f"ExecStart=/bin/touch {stamp('join-cluster')}"],
            unit=[*needs, f"ConditionPathExists=!{stamp('join-cluster')}"],
        )
    return units


# -- the whole config ----------------------------------------------------------


def machine_ignition(cluster: K8sCluster, role: str, node: Node | None = None) -> Ignition:
    """The Ignition config of one machine: ``role`` master (the cluster's) or worker ``node``."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if role == "master":
        node = cluster.master
    elif node is None or node not in cluster.workers:
        raise ValueError(f"worker {node!r} is not one of the cluster's workers")
    flavor = cluster.flavor
    ign = (
        Ignition()
        .add_directory("/etc/systemd/system/kubelet.service.d", overwrite=True)
        .add_file("/etc/hostname", node.name + "\n")
        .add_file("/etc/hosts", hosts_file(cluster))
        .add_file(SYSCTL_CONF, sysctl_conf())
        .add_file(KUBELET_DROPIN, kubelet_dropin())
        .add_link("/etc/localtime", "../usr/share/zoneinfo/Asia/Shanghai", overwrite=True)
    )
    if flavor.cri == "isulad":
        ign.add_file(flavor.cri_config_path, isulad_daemon_json(cluster))
        ign.add_file("/root/pull_images.sh", pull_images_script(cluster))
    else:
        ign.add_file(flavor.cri_config_path, containerd_config_toml(cluster))
        ign.add_file("/root/load_images.sh", load_images_script())
        kubeconfig = ADMIN_CONF if role == "master" else KUBELET_CONF
        ign.add_file("/root/install-cni.sh", bridge_cni_script(kubeconfig))
        ign.add_file(POD_ROUTES_SCRIPT, pod_routes_script(node, kubeconfig, cluster.service_cidr))
    if role == "master":
        ign.add_file(INIT_CONFIG, to_yaml(init_configuration(cluster)))
    else:
        assert node is not None
        ign.add_file(JOIN_CONFIG, to_yaml([join_configuration(cluster, node)]))
        ign.add_file(WAIT_MASTER_SCRIPT, wait_for_master_script(cluster), mode=0o700)
    ign.add_unit("kubelet.service", KUBELET_UNIT, enabled=True)
    for name, contents in {**run_once_units(cluster, role, node),
                           **pod_network_units(cluster)}.items():
        ign.add_unit(f"{name}.service", contents, enabled=True)
    return ign


NODE_BINARIES = ("/usr/bin/kubeadm", "/usr/bin/kubelet", "/usr/bin/kubectl")


def only_if_installed(cluster: K8sCluster, role: str) -> Ignition:
    """Drop-ins making every unit of the recipe a no-op where Kubernetes is not installed.

    Merged under a test's config, an image without kubeadm/kubelet boots clean
    (conditions skip the units instead of failing them), so the test can SKIP
    naming what is missing instead of failing the boot.
    """
    node = cluster.master if role == "master" else cluster.workers[0]
    guard = "[Unit]\n" + "".join(f"ConditionPathExists={path}\n" for path in NODE_BINARIES)
    ign = Ignition().add_unit("kubelet.service", dropins={"05-kolapy-installed.conf": guard})
    for name in [*run_once_units(cluster, role, node), *pod_network_units(cluster)]:
        ign.add_unit(f"{name}.service", dropins={"05-kolapy-installed.conf": guard})
    return ign


AFTER_BOOT_FLAG = "/run/kolapy-k8s-after-boot"
AFTER_BOOT_UNIT = "kolapy-k8s-after-boot.service"


def after_boot(cluster: K8sCluster, role: str) -> Ignition:
    """Drop-ins running the recipe's run-once units once the boot has finished, not in it.

    NestOS's run-once units are ``Type=oneshot`` and wanted by
    ``multi-user.target``: the boot is not finished (``systemctl
    is-system-running`` says ``starting``) until ``kubeadm init`` or ``join`` is
    done, which under emulation takes longer than any boot wait.  Merged under a
    test's config, this skips them during the boot (a condition on a flag in
    ``/run``) and a ``Type=simple`` unit (which never holds the boot up) waits
    for the boot to finish, sets the flag and starts them, in the recipe's order
    (their own ``Requires=``/``After=``).  The units themselves are unchanged.
    """
    node = cluster.master if role == "master" else cluster.workers[0]
    units = [f"{name}.service" for name in run_once_units(cluster, role, node)]
    guard = f"[Unit]\nConditionPathExists={AFTER_BOOT_FLAG}\n"
    ign = Ignition()
    for unit in units:
        ign.add_unit(unit, dropins={"06-kolapy-after-boot.conf": guard})
    starter = (
        "[Unit]\n"
        "Description=kolapy: start the Kubernetes run-once units once the boot has finished\n"
        + "".join(f"ConditionPathExists={path}\n" for path in NODE_BINARIES)
        + "\n[Service]\nType=simple\n"
        f"ExecStart=/bin/sh -c 'systemctl is-system-running --wait; touch {AFTER_BOOT_FLAG}; "
        f"exec systemctl start --no-block {' '.join(units)}'\n"
        "\n[Install]\nWantedBy=multi-user.target\n"
    )
    return ign.add_unit(AFTER_BOOT_UNIT, starter, enabled=True)
