"""Guest forwards: how a guest reaches a service that kolapy runs on the host.

Every QEMU machine gets, on its user-mode NIC, one ``guestfwd`` per port of
:data:`GUEST_PORTS`: a TCP connection from the guest to ``10.0.2.100:<port>``
runs ``socat`` on the host, joined to the unix socket ``svc-<port>.sock`` in
the machine's socket directory.  Nothing listens there until a service is
*attached*: :func:`attach` makes that path a symbolic link to the service's own
unix socket.  So

* services can start after the machine booted, and a shared machine can meet
  a different service in each test;
* nothing listens on a host TCP port: the guest reaches exactly the attached
  services and nothing else (the NIC keeps ``restrict=on``);
* a connection to a port without a service is accepted by QEMU and closed at
  once (the relay finds no socket): the guest reads end-of-file, never hangs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

GUEST_ADDR = "10.0.2.100"
"""The address guests use for host services (inside slirp's 10.0.2.0/24, unused by it)."""

HTTP_PORTS = (8080, 8081)
"""Guest ports for HTTP file servers (the first is the default)."""

REGISTRY_PORT = 5000
"""Guest port of the container registry."""

GUEST_PORTS = (*HTTP_PORTS, REGISTRY_PORT)
"""Every port a machine forwards to host services."""

RELAY = "socat"
"""The per-connection relay QEMU runs (Debian package ``socat``)."""


class HostService(Protocol):
    """A service on the host listening on a unix socket."""

    @property
    def socket_path(self) -> Path: ...


def link_path(sockdir: Path, port: int) -> Path:
    """Where a machine's forward for guest ``port`` connects."""
    return Path(sockdir) / f"svc-{port}.sock"


def guestfwd_options(sockdir: Path) -> str:
    """The ``,guestfwd=...`` part of a ``-nic user`` value (empty without ``socat``).

    Each guest connection makes QEMU (libslirp) start ``socat STDIO
    UNIX-CONNECT:<link>``; the relay exits with the connection, or with QEMU.
    """
    relay = shutil.which(RELAY)
    if relay is None:
        return ""
    parts = []
    for port in GUEST_PORTS:
        target = link_path(sockdir, port)
        # QEMU's option parser: a ',' inside a value is written ',,'.
        cmd = f"{relay} STDIO UNIX-CONNECT:{target}".replace(",", ",,")
        parts.append(f",guestfwd=tcp:{GUEST_ADDR}:{port}-cmd:{cmd}")
    return "".join(parts)


def attach(machine: Any, service: HostService, guest_port: int) -> str:
    """Make ``service`` answer on ``GUEST_ADDR:guest_port`` inside ``machine``.

    Returns ``"10.0.2.100:<port>"``.  Replaces whatever was attached to that
    port before.  Raises :class:`~kolapy.errors.InfraError` if the machine has
    no forward for the port (not a QEMU machine, or ``socat`` is missing).
    """
    from kolapy.errors import BadInputError, InfraError

    if guest_port not in GUEST_PORTS:
        raise BadInputError(
            f"guest port {guest_port} has no forward (choose one of {GUEST_PORTS})"
        )
    sockdir = getattr(getattr(machine, "paths", None), "sockdir", None)
    argv = getattr(machine, "argv", [])
    if sockdir is None or not any(f"{GUEST_ADDR}:{guest_port}-cmd:" in a for a in argv):
        raise InfraError(
            f"{getattr(machine, 'name', machine)}: no guest forward for port {guest_port} "
            f"(host services need '{RELAY}' on the host when the machine boots)"
        )
    link = link_path(sockdir, guest_port)
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    os.symlink(service.socket_path, tmp)
    os.replace(tmp, link)  # atomic: a connection sees the old service or the new one
    return f"{GUEST_ADDR}:{guest_port}"


def detach(machine: Any, guest_port: int, service: HostService | None = None) -> None:
    """Remove the link of ``guest_port`` (only if it still points at ``service``, if given)."""
    sockdir = getattr(getattr(machine, "paths", None), "sockdir", None)
    if sockdir is None:
        return
    link = link_path(sockdir, guest_port)
    try:
        if service is not None and Path(os.readlink(link)) != Path(service.socket_path):
            return
        link.unlink()
    except OSError:
        pass
