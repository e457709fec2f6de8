"""Services on the host that guests reach (HTTP file server, container registry).

Guests connect to ``10.0.2.100:<port>``; QEMU relays each connection to the
service attached to that port of the machine (:mod:`kolapy.hostsvc.forward`).
Services listen on unix sockets only: nothing is exposed on a host port.

    with HttpService(repo_dir, log_path=out / "http.log") as srv:
        base = "http://" + attach(machine, srv, HTTP_PORTS[0])

Tests use the ``host_http`` and ``host_registry`` fixtures instead
(:mod:`kolapy.hostsvc.fixtures`), which stop the service and keep its log in
the test's artifacts.
"""

from kolapy.hostsvc.forward import (
    GUEST_ADDR,
    GUEST_PORTS,
    HTTP_PORTS,
    REGISTRY_PORT,
    attach,
    detach,
)
from kolapy.hostsvc.http import HttpService
from kolapy.hostsvc.registry import RegistryService

__all__ = [
    "GUEST_ADDR",
    "GUEST_PORTS",
    "HTTP_PORTS",
    "REGISTRY_PORT",
    "HttpService",
    "RegistryService",
    "attach",
    "detach",
]
