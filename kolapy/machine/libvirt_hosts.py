"""Libvirt hosts of a run: connections, placement by free memory, and cleanup.

* :func:`check_uris` opens every ``--libvirt-uri`` once before anything boots: a
  missing libvirt-python, a daemon that is not running or a URI that cannot be
  reached is a :class:`BadInputError` naming the URI (one line, exit 2); so is a
  ``--libvirt-network NAME`` that is missing or inactive on one of them.
* :func:`place` picks, among hosts that can hold a machine, the one with the most
  free memory (a cluster asks once for all its members: they share a host).  A
  host's free memory is what it reports less what kolapy's domains placed through
  that URI may still claim (their size less their resident memory): a domain that
  has just started has touched little of its memory yet.  Placement and domain
  creation hold a lock on this machine, so parallel workers see each other's domains.
* Every domain, volume and network kolapy creates is registered until it is
  destroyed; :func:`destroy_all` (atexit, and the unwinding of Ctrl-C/SIGTERM)
  removes what is left, so no ``kolapy-*`` object outlives the run.  A run killed
  with SIGKILL cannot clean up: its volumes and networks are named in an on-disk
  journal (:mod:`kolapy.machine.libvirt_journal`) and the next run's
  :func:`check_uris` destroys them (:func:`sweep_killed_runs`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import re
import secrets
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kolapy.errors import BadInputError, InfraError
from kolapy.machine import libvirt_journal as journal

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
"""(uri, kind, name) -> libvirt object still to destroy (kind: domain, volume or network;
a volume's name is ``<pool>/<volume>``)."""
_lock = threading.Lock()
_KIND_ORDER = {"domain": 0, "volume": 1, "network": 2}
"""Destroy domains first (they use the volumes and networks)."""

DEFAULT_POOL = "kolapy"
STORAGES = ("auto", "files", "pool")
NETWORKS = ("auto", "user", "nat")


@dataclass(frozen=True)
class LibvirtOptions:
    """How a run's domains get their disks and their network (``--libvirt-*`` options)."""

    storage: str = "auto"
    """``files`` (this machine's files), ``pool`` (volumes in ``pool``; console and
    journals through libvirt streams) or ``auto``: files on a local URI, else pool."""
    network: str = "auto"
    """``user`` (user-mode NIC, SSH forwarded from the host's 127.0.0.1), ``nat`` (a
    transient NAT network of the run, SSH to the DHCP lease), the name of an existing
    libvirt network (SSH to the lease), or ``auto``: user on a local URI, else nat."""
    pool: str = DEFAULT_POOL
    """The storage pool of ``pool`` storage (a directory pool is made when missing)."""
    uris: tuple[str, ...] = ()
    """The run's hosts: a machine that is no cluster member is placed among them when
    its domain is made."""

    def storage_for(self, uri: str) -> str:
        """``files`` or ``pool`` on ``uri``."""
        if self.storage == "auto":
            return "files" if is_local(uri) else "pool"
        return self.storage

    def network_for(self, uri: str) -> str:
        """``user``, ``nat`` or a network's name on ``uri``."""
        if self.network == "auto":
            return "user" if is_local(uri) else "nat"
        return self.network


def is_local(uri: str) -> bool:
    """True when ``uri`` names this machine's daemon (no host part: ``qemu:///system``)."""
    return not urlsplit(uri).hostname


def options_of(cfg: Any) -> LibvirtOptions:
    """The run's :class:`LibvirtOptions` from its config."""
    return LibvirtOptions(getattr(cfg, "libvirt_storage", "auto"),
                          getattr(cfg, "libvirt_network", "auto"),
                          getattr(cfg, "libvirt_pool", DEFAULT_POOL), uris_of(cfg))


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


def check_uris(uris: Sequence[str], network: str = "auto") -> None:
    """Open every URI now, before any boot (see module docstring); a named
    ``--libvirt-network`` must exist and be active on each of them.  First, what runs
    killed without cleanup left is destroyed (:func:`sweep_killed_runs`)."""
    try:
        sweep_killed_runs()
    except OSError as exc:  # the state dir: not worth failing the run for
        log.warning("cannot look for libvirt objects of killed runs: %s", exc)
    for uri in uris:
        conn = connect(uri)
        if network not in ("auto", "user", "nat"):
            check_network(conn, uri, network)


def check_network(conn: Any, uri: str, name: str) -> None:
    """:class:`BadInputError` unless the network ``name`` on ``uri`` exists and is active."""
    libvirt = _libvirt()
    try:
        net = conn.networkLookupByName(name)
    except libvirt.libvirtError:
        raise BadInputError(f"--libvirt-network {name!r}: no such network on {uri} "
                            f"(see: virsh -c {uri} net-list --all)") from None
    if not net.isActive():
        raise BadInputError(f"--libvirt-network {name!r} on {uri} is not active "
                            f"(start it: virsh -c {uri} net-start {name})")


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
    """The host's free memory in MiB, as its libvirt reports it, less what kolapy's
    domains placed through ``uri`` may still claim (:func:`unclaimed_mib`)."""
    conn = connect(uri)
    try:
        return int(conn.getFreeMemory()) // (1024 * 1024) - unclaimed_mib(uri)
    except Exception as exc:  # a lost connection: this host cannot take machines
        log.warning("libvirt %s: cannot read free memory: %s", uri, exc)
        return -1


def placed_through(domain_xml: str) -> str:
    """The URI in a domain's kolapy ``<metadata>`` (empty: none)."""
    from kolapy.machine.libvirt_xml import KOLAPY_NS

    try:
        root = ET.fromstring(domain_xml)
    except ET.ParseError:
        return ""
    el = root.find(f"metadata/{{{KOLAPY_NS}}}placement")
    return "" if el is None else el.get("uri", "")


def unclaimed_mib(uri: str) -> int:
    """Memory (MiB) that running ``kolapy-*`` domains placed through ``uri`` (by any
    run) have been given but not touched yet: the sum of size less resident memory."""
    total_kib = 0
    for dom in connect(uri).listAllDomains(1):  # VIR_CONNECT_LIST_DOMAINS_ACTIVE
        try:
            if not dom.name().startswith("kolapy-") or placed_through(dom.XMLDesc(0)) != uri:
                continue
            rss = int(dom.memoryStats().get("rss", 0))
            total_kib += max(0, int(dom.maxMemory()) - rss)
        except Exception:  # gone meanwhile
            continue
    return total_kib // 1024


@contextlib.contextmanager
def placement_lock() -> Iterator[None]:
    """Held from a placement until its domain exists: kolapy processes on this machine
    (xdist workers, parallel runs) place one at a time and see each other's domains."""
    path = Path(tempfile.gettempdir()) / "kolapy-libvirt-place.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def place(uris: Sequence[str], need_mib: int) -> str:
    """The host (URI) for a machine or a whole cluster of ``need_mib`` MiB in all."""
    if len(uris) == 1:
        return uris[0]
    hosts = [HostInfo(u, free_mib(u)) for u in uris]
    chosen = choose(hosts, need_mib)
    log.info("placement of %d MiB: %s -> %s", need_mib,
             ", ".join(f"{h.uri} {h.free_mib} MiB free" for h in hosts), chosen)
    return chosen


def register(uri: str, kind: str, name: str, obj: Any = None) -> None:
    """Remember a domain, volume (``<pool>/<volume>``) or network to destroy.

    Register the name (``obj`` None) *before* creating it: an interrupt (Ctrl-C, a
    test timeout) that arrives while the create call returns must not lose the object."""
    with _lock:
        if (uri, kind, name) not in _live:
            journal.record(uri, kind, name)
        _live[(uri, kind, name)] = obj


def forget(uri: str, kind: str, name: str) -> None:
    """Drop a registration whose create call failed (nothing to destroy)."""
    with _lock:
        _live.pop((uri, kind, name), None)


def destroy(uri: str, kind: str, name: str) -> None:
    """Destroy one registered domain or network (a transient one then disappears), or
    delete one registered volume."""
    with _lock:
        if (uri, kind, name) not in _live:
            return
        obj = _live.pop((uri, kind, name))
    _destroy_object(uri, kind, name, obj)


def _destroy_object(uri: str, kind: str, name: str, obj: Any) -> bool:
    """Destroy (volumes: delete) ``obj``, or the object named so when ``obj`` is None;
    False when it is gone already, :class:`InfraError` when libvirt refuses."""
    libvirt = _libvirt()
    try:
        if obj is None:  # registered before its create call returned: look it up
            obj = _lookup(connect(uri), kind, name)
        if kind == "volume":
            obj.delete(0)
        else:
            obj.destroy()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK,
                                        libvirt.VIR_ERR_NO_STORAGE_VOL,
                                        libvirt.VIR_ERR_NO_STORAGE_POOL,
                                        libvirt.VIR_ERR_OPERATION_INVALID):
            raise InfraError(f"libvirt {uri}: cannot destroy {kind} {name}: {exc}") from exc
        return False
    return True


def _lookup(conn: Any, kind: str, name: str) -> Any:
    if kind == "domain":
        return conn.lookupByName(name)
    if kind == "network":
        return conn.networkLookupByName(name)
    pool, _, vol = name.partition("/")
    return conn.storagePoolLookupByName(pool).storageVolLookupByName(vol)


def live_names() -> list[str]:
    """Names of the domains, volumes and networks this process created and did not
    destroy yet."""
    with _lock:
        return [name for (_, _, name) in _live]


def destroy_all() -> int:
    """Destroy every registered domain, then volume, then network; returns how many."""
    with _lock:
        keys = sorted(_live, key=lambda k: _KIND_ORDER[k[1]])
    failed = False
    for uri, kind, name in keys:
        try:
            destroy(uri, kind, name)
        except Exception as exc:
            failed = True
            log.warning("%s", exc)
    if keys:
        log.info("destroyed %d libvirt object(s)", len(keys))
    with _lock:
        if not failed and not _live:
            journal.finish()
    return len(keys)


def sweep_killed_runs() -> list[str]:
    """Destroy the objects that runs killed without cleanup (``kill -9``) left behind,
    as their journals name them (:mod:`kolapy.machine.libvirt_journal`); returns the
    names of those that were still there.  A journal whose objects cannot all be
    destroyed now (an unreachable host) is kept for a later run."""
    removed: list[str] = []
    with journal.dead_journals() as dead:
        for j in dead:
            kept = False
            for uri, kind, name in sorted(j.entries, key=lambda k: _KIND_ORDER[k[1]]):
                try:
                    if _destroy_object(uri, kind, name, None):
                        removed.append(name)
                except Exception as exc:  # e.g. an unreachable host: the journal stays
                    kept = True
                    log.warning("%s (left for a later run)", exc)
            if kept:
                j.release()
            else:
                j.remove()
    if removed:
        log.warning("removed %d libvirt object(s) a killed run left: %s",
                    len(removed), ", ".join(removed))
    return removed


atexit.register(destroy_all)
