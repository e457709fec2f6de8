"""The Ignition every container test boots with (one config: machines can be shared).

* podman: a registries.conf.d drop-in marking the host registry insecure (plain HTTP);
* docker: ``/etc/docker/daemon.json`` with that registry in ``insecure-registries``,
  and docker.socket enabled, as FCOS does (the reference image enables nothing by
  preset).  The socket, not the service: boot does not wait for dockerd, whose
  start took over 7 minutes on a loaded aarch64 TCG guest; the first docker
  command starts it;
* isula: isulad.service enabled (a no-op on images without it).
"""

from __future__ import annotations

import json

from kolapy.ignition import Ignition

#: Where guests reach the registry the harness runs on the host (kolapy/hostsvc).
REGISTRY_ADDRESS = "10.0.2.100:5000"

PODMAN_REGISTRIES_DROPIN = "/etc/containers/registries.conf.d/50-kolapy-registry.conf"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"


def podman_registry_conf(address: str = REGISTRY_ADDRESS) -> str:
    """registries.conf drop-in: ``address`` is a plain-HTTP registry."""
    return f'[[registry]]\nlocation = "{address}"\ninsecure = true\n'


def docker_daemon_json(address: str = REGISTRY_ADDRESS) -> str:
    """docker daemon.json allowing plain HTTP to ``address``."""
    return json.dumps({"insecure-registries": [address]}, indent=2) + "\n"


def container_ignition(address: str = REGISTRY_ADDRESS) -> Ignition:
    """The config shared by every podman/docker/isula test."""
    return (
        Ignition()
        .add_file(PODMAN_REGISTRIES_DROPIN, podman_registry_conf(address))
        .add_file(DOCKER_DAEMON_JSON, docker_daemon_json(address))
        .add_unit("docker.socket", enabled=True)
        .add_unit("isulad.service", enabled=True)
    )
