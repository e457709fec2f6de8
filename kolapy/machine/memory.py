"""Memory-aware admission: a machine starts only when the host has the memory for it.

Every machine about to start takes a *reservation* of its guest memory plus
QEMU's own overhead in a host-wide ledger (one small JSON file per machine, in
``$TMPDIR/kolapy-memory-<uid>/``, under a file lock), so that xdist workers and
concurrent kolapy runs on one host see each other.  A machine is admitted when

    available memory (MemAvailable) - what running machines have reserved
    but not yet touched  >=  its own reservation

and waits (polling) otherwise.  A guest touches its memory lazily, so what a
running machine still may take is its reservation minus QEMU's resident size.
Entries of dead processes are ignored and removed.  A machine bigger than the
host's total memory (or the cap) never waits: it starts at once, and QEMU says
what it cannot allocate.

``KOLAPY_HOST_MEMORY_MIB`` caps the memory kolapy believes the host has (for
sharing a host with other work, and for tests of this module).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from kolapy.pids import pid_alive

log = logging.getLogger("kolapy.memory")

QEMU_OVERHEAD_MIB = 320
"""QEMU's own memory beyond the guest's (TCG translation cache, devices); measured ~250."""
ENV_LIMIT = "KOLAPY_HOST_MEMORY_MIB"


def ledger_dir() -> Path:
    """The host-wide ledger directory (created on first use)."""
    d = Path(tempfile.gettempdir()) / f"kolapy-memory-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def mem_available_mib() -> int:
    """MemAvailable from /proc/meminfo, capped by ``KOLAPY_HOST_MEMORY_MIB``."""
    avail = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) // 1024
                break
    limit = os.environ.get(ENV_LIMIT)
    if limit:
        # The cap is for everything kolapy runs: subtract what its machines hold now.
        return min(avail, int(limit) - sum(rss_mib(e.pid) for e in _entries(ledger_dir())))
    return avail


def host_total_mib() -> int:
    """MemTotal from /proc/meminfo, capped by ``KOLAPY_HOST_MEMORY_MIB``."""
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) // 1024
                break
    limit = os.environ.get(ENV_LIMIT)
    return min(total, int(limit)) if limit else total


def rss_mib(pid: int | None) -> int:
    """Resident memory of ``pid`` in MiB (0 if unknown or gone)."""
    if not pid:
        return 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


@dataclass
class _Entry:
    path: Path
    owner: int
    pid: int | None
    reserve_mib: int
    machine: str


def _entries(d: Path) -> list[_Entry]:
    out = []
    for p in d.glob("*.json"):
        try:
            data = json.loads(p.read_text())
            entry = _Entry(p, int(data["owner"]), data.get("pid"), int(data["reserve_mib"]),
                           str(data.get("machine", "")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not pid_alive(entry.owner) or (entry.pid and not pid_alive(entry.pid)):
            p.unlink(missing_ok=True)  # a crashed run's leftover
            continue
        out.append(entry)
    return out


class Reservation:
    """One machine's place in the ledger; :meth:`release` when the machine stops."""

    def __init__(self, path: Path, reserve_mib: int, waited_s: float) -> None:
        self.path = path
        self.reserve_mib = reserve_mib
        self.waited_s = waited_s

    def set_pid(self, pid: int | None) -> None:
        """Record QEMU's pid, so its resident memory counts as taken."""
        try:
            data = json.loads(self.path.read_text())
            data["pid"] = pid
            self.path.write_text(json.dumps(data))
        except OSError:
            pass

    def release(self) -> None:
        """Give the memory back (idempotent)."""
        self.path.unlink(missing_ok=True)


def admit(
    machine: str,
    guest_mib: int,
    *,
    timeout: float = 3600.0,
    on_wait: Callable[[int, int], None] | None = None,
    poll: float = 1.0,
    ledger: Path | None = None,
) -> Reservation:
    """Wait until ``guest_mib`` (+ QEMU's overhead) fits, then reserve it.

    ``on_wait(need_mib, free_mib)`` is called once when the machine has to
    wait (for the live view).  Raises :class:`~kolapy.errors.InfraError` after
    ``timeout`` seconds of waiting.
    """
    from kolapy.errors import InfraError

    d = ledger or ledger_dir()
    need = guest_mib + QEMU_OVERHEAD_MIB
    start = time.monotonic()
    told = False
    while True:
        with FileLock(str(d / ".lock")):
            entries = _entries(d)
            total = host_total_mib()
            outstanding = sum(max(0, min(e.reserve_mib, total) - rss_mib(e.pid))
                              for e in entries)
            free = mem_available_mib() - outstanding
            # Waiting helps only if the machine could ever fit: one bigger than the host
            # starts at once (QEMU then reports what it cannot allocate).
            if free >= need or not entries or need > total:
                path = d / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
                path.write_text(json.dumps({"owner": os.getpid(), "pid": None,
                                            "reserve_mib": need, "machine": machine}))
                waited = time.monotonic() - start if told else 0.0
                if told:
                    log.info("%s: admitted after waiting %.0f s for memory", machine, waited)
                return Reservation(path, need, waited)
        if not told:
            told = True
            log.info("%s: waiting for memory: needs %d MiB, %d MiB free (%d machines running)",
                     machine, need, free, len(entries))
            if on_wait is not None:
                on_wait(need, free)
        if time.monotonic() - start > timeout:
            raise InfraError(
                f"{machine}: waited {timeout:.0f} s for {need} MiB of memory ({free} MiB free)"
            )
        time.sleep(poll)


def auto_workers(guest_mib: int, cores: int | None = None) -> int:
    """A parallel width for ``-n auto``: no more than the cores, nor machines that fit."""
    cores = cores or os.cpu_count() or 1
    by_memory = max(1, mem_available_mib() // (guest_mib + QEMU_OVERHEAD_MIB))
    return max(1, min(cores, by_memory))
