"""Libvirt hosts of a run: connections, placement by free memory, and cleanup.

* :func:`check_uris` opens every ``--libvirt-uri`` once before anything boots: a
  missing libvirt-python, a daemon that is not running or a URI that cannot be
  reached is a :class:`BadInputError` naming the URI (one line, exit 2).
* :func:`place` picks, among hosts that can hold a machine, the one with the most
  free memory (a cluster asks once for all its members: they share a host).
* Every domain and network kolapy creates is registered until it is destroyed;
  :func:`destroy_all` (atexit, and the unwinding of Ctrl-C/SIGTERM) removes what
  is left, so no ``kolapy-*`` object outlives the run.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kolapy.errors import BadInputError, InfraError

log = logging.getLogger("kolapy.machine")

DEFAULT_URI = "qemu:///system"
RUN_ENV = "KOLAPY_LIBVIRT_RUN"
"""Environment variable that names the run (``kolapy-<run>-...``) instead of a random id,
so a caller (e.g. a test of kolapy) knows which domains are its run's."""


def _run_id() -> str:
    given = os.environ.get(RUN_ENV, "")
    if given and not re.fullmatch(r"[a-z0-9]{1,16}", given):
        raise BadInputError(f"{RUN_ENV}={given!r}: use 1-16 lowercase letters or digits")
    return given or secrets.token_hex(3)


RUN_ID = _run_id()
"""This run's part of every domain/network name (``kolapy-<run>-<machine>``): the same in
every xdist worker of a run that sets :data:`RUN_ENV`, else random per process (the
machine names carry the worker either way)."""

_conns: dict[str, Any] = {}
_live: dict[tuple[str, str, str], Any] = {}
"""(uri, kind, name) -> libvirt object still to destroy (kind: domain or network)."""
_lock = threading.Lock()


def _libvirt() -> Any:
    try:
        import libvirt
    except ImportError:
        raise BadInputError(
            "--platform libvirt needs libvirt-python (pip install libvirt-python)"
        ) from None
    return libvirt


def connect(uri: str) -> Any:
    """The (cached) connection to ``uri``; :class:`BadInputError` naming it on failure."""
    with _lock:
        conn = _conns.get(uri)
        if conn is not None:
            return conn
    libvirt = _libvirt()
    libvirt.registerErrorHandler(lambda *_: None, None)  # no C-level stderr noise
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "no answer"
        raise BadInputError(f"cannot reach libvirt at {uri}: {msg}") from None
    with _lock:
        _conns[uri] = conn
    return conn


def uris_of(cfg: Any) -> tuple[str, ...]:
    """The run's libvirt URIs (``--libvirt-uri``, else :data:`DEFAULT_URI`)."""
    return tuple(cfg.libvirt_uris) or (DEFAULT_URI,)


def check_uris(uris: Sequence[str]) -> None:
    """Open every URI now, before any boot (see module docstring)."""
    for uri in uris:
        connect(uri)


@dataclass(frozen=True)
class HostInfo:
    """What placement knows of one host."""

    uri: str
    free_mib: int


def choose(hosts: Sequence[HostInfo], need_mib: int) -> str:
    """The URI with the most free memory among those with ``need_mib`` free.

    When none has enough, the one with the most free memory all the same (the
    host's overcommit decides); ties go to the first given.
    """
    if not hosts:
        raise ValueError("no libvirt host to place a machine on")
    fitting = [h for h in hosts if h.free_mib >= need_mib] or list(hosts)
    return max(fitting, key=lambda h: h.free_mib).uri


def free_mib(uri: str) -> int:
    """The host's free memory in MiB, as its libvirt reports it."""
    conn = connect(uri)
    try:
        return int(conn.getFreeMemory()) // (1024 * 1024)
    except Exception as exc:  # a lost connection: this host cannot take machines
        log.warning("libvirt %s: cannot read free memory: %s", uri, exc)
        return -1


def place(uris: Sequence[str], need_mib: int) -> str:
    """The host (URI) for a machine or a whole cluster of ``need_mib`` MiB in all."""
    if len(uris) == 1:
        return uris[0]
    return choose([HostInfo(u, free_mib(u)) for u in uris], need_mib)


def register(uri: str, kind: str, name: str, obj: Any = None) -> None:
    """Remember a domain or network to destroy.  Register the name (``obj`` None)
    *before* creating it: an interrupt (Ctrl-C, a test timeout) that arrives
    while the create call returns must not lose the object."""
    with _lock:
        _live[(uri, kind, name)] = obj


def forget(uri: str, kind: str, name: str) -> None:
    """Drop a registration whose create call failed (nothing to destroy)."""
    with _lock:
        _live.pop((uri, kind, name), None)


def destroy(uri: str, kind: str, name: str) -> None:
    """Destroy one registered domain or network (a transient one then disappears)."""
    with _lock:
        if (uri, kind, name) not in _live:
            return
        obj = _live.pop((uri, kind, name))
    libvirt = _libvirt()
    try:
        if obj is None:  # registered before its create call returned: look it up
            conn = connect(uri)
            obj = conn.lookupByName(name) if kind == "domain" else conn.networkLookupByName(name)
        obj.destroy()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK,
                                        libvirt.VIR_ERR_OPERATION_INVALID):
            raise InfraError(f"libvirt {uri}: cannot destroy {kind} {name}: {exc}") from exc


def live_names() -> list[str]:
    """Names of the domains and networks this process created and did not destroy yet."""
    with _lock:
        return [name for (_, _, name) in _live]


def destroy_all() -> int:
    """Destroy every registered domain, then every network; returns how many."""
    with _lock:
        keys = sorted(_live, key=lambda k: k[1] != "domain")  # domains before networks
    for uri, kind, name in keys:
        try:
            destroy(uri, kind, name)
        except Exception as exc:
            log.warning("%s", exc)
    if keys:
        log.info("destroyed %d libvirt object(s)", len(keys))
    return len(keys)


atexit.register(destroy_all)
