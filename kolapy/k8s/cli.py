"""``kolapy k8s ignition``: write NestOS's Kubernetes Ignition configs (wiring only).

    kolapy k8s ignition --role master --master k8s-master01=10.200.0.11 \\
        --worker k8s-node01=10.200.0.12 -o master.ign
    kolapy k8s ignition --role worker --node k8s-node01 --token abcdef.0123456789abcdef ...

A master's config carries the bootstrap token it creates; a worker's must use
the same one, so ``--token`` is generated (and printed to stderr) only when
absent, and the same ``--token`` goes to every machine of one cluster.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from kolapy.errors import BadInputError
from kolapy.k8s.recipe import FLAVORS, ROLES, TOKEN_RE, K8sCluster, Node, machine_ignition


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``k8s`` verb and its actions on ``sub``."""
    k8s = sub.add_parser("k8s", help="Kubernetes by Ignition (NestOS's recipe)")
    ksub = k8s.add_subparsers(dest="k8s_verb", required=True, metavar="ACTION")
    ign = ksub.add_parser("ignition", help="write one machine's Ignition config")
    ign.add_argument("--role", required=True, choices=ROLES)
    ign.add_argument("--master", required=True, metavar="NAME=ADDRESS",
                     help="the master's hostname and cluster-network address")
    ign.add_argument("--worker", action="append", default=[], metavar="NAME=ADDRESS",
                     help="a worker (repeat for each)")
    ign.add_argument("--node", metavar="NAME", help="with --role worker: which worker")
    ign.add_argument("--token", help="bootstrap token (default: a new one, printed to stderr)")
    ign.add_argument("--flavor", choices=sorted(FLAVORS), default="reference",
                     help="nestos: iSulad, pulled images; reference: containerd, loaded images")
    ign.add_argument("--pod-cidr", default="10.100.0.0/16")
    ign.add_argument("--service-cidr", default="10.96.0.0/16")
    ign.add_argument("--image-repository", default="registry.k8s.io")
    ign.add_argument("-o", "--output", metavar="PATH", default="-",
                     help="where to write the config ('-': stdout, the default)")


def _node(text: str, flag: str) -> Node:
    name, sep, address = text.partition("=")
    if not sep or not name:
        raise BadInputError(f"{flag} {text!r}: expected NAME=ADDRESS")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise BadInputError(f"{flag} {text!r}: {address!r} is not an IP address") from None
    return Node(name, address)


def run(ns: argparse.Namespace) -> int:
    """Carry out ``kolapy k8s ignition``; raises BadInputError on bad input."""
    master = _node(ns.master, "--master")
    workers = tuple(_node(w, "--worker") for w in ns.worker)
    token = ns.token
    if token is not None and not TOKEN_RE.match(token):
        raise BadInputError(f"--token {token!r}: expected [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    extra = {"token": token} if token else {}
    try:
        cluster = K8sCluster(
            master=master, workers=workers, flavor=FLAVORS[ns.flavor],
            pod_cidr=ns.pod_cidr, service_cidr=ns.service_cidr,
            image_repository=ns.image_repository, **extra,
        )
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    node = None
    if ns.role == "worker":
        matches = [w for w in workers if w.name == ns.node]
        if not matches:
            raise BadInputError(
                f"--node {ns.node!r}: --role worker needs --node naming one of the --worker names"
            )
        node = matches[0]
    config = machine_ignition(cluster, ns.role, node).to_json(indent=2) + "\n"
    if token is None:
        print(f"kolapy: bootstrap token {cluster.token} (pass --token to the other machines)",
              file=sys.stderr)
    if ns.output == "-":
        sys.stdout.write(config)
    else:
        try:
            Path(ns.output).write_text(config)
        except OSError as exc:
            raise BadInputError(f"--output {ns.output}: {exc.strerror}") from None
    return 0
