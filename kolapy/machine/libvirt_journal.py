"""An on-disk journal of the libvirt objects a process creates, for runs that were killed.

Domains die with a killed run (they are made with autodestroy), but its storage
volumes and NAT networks do not: ``kill -9`` skips every cleanup.  So each process
that creates libvirt objects writes one line per object (``uri<TAB>kind<TAB>name``)
to a journal of its own under ``<state dir>/libvirt-journals/`` and holds an
exclusive ``flock`` on it while it lives.  The kernel drops that lock when the
process dies, however it dies: a journal whose lock can be taken belongs to a dead
process, and :func:`dead_journals` hands its entries to the next run, which destroys
what is still there (objects already gone are skipped) and removes the journal.

A journal is created under a temporary name and renamed once locked, so a sweeping
run never sees an unlocked journal of a live process.  The state dir is
``$KOLAPY_STATE_DIR``, else the user state dir for kolapy.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import platformdirs

SUFFIX = ".objs"
_lock = threading.Lock()
_journal: IO[str] | None = None
_journal_path: Path | None = None
_journal_pid = 0
_warned = False
log = logging.getLogger("kolapy.machine")


def journal_dir() -> Path:
    """Where the journals live: ``$KOLAPY_STATE_DIR/libvirt-journals``, else under the
    user state dir."""
    base = os.environ.get("KOLAPY_STATE_DIR") or platformdirs.user_state_dir("kolapy")
    return Path(base) / "libvirt-journals"


def _open() -> IO[str]:
    """This process's journal, created and locked on first use."""
    global _journal, _journal_path, _journal_pid
    if _journal is not None and _journal_pid == os.getpid():
        return _journal
    d = journal_dir()
    d.mkdir(parents=True, exist_ok=True)
    final = d / f"{os.getpid()}-{os.urandom(3).hex()}{SUFFIX}"
    tmp = final.with_suffix(".new")
    f = open(tmp, "a", encoding="utf-8")  # noqa: SIM115 (held open for the process's life)
    fcntl.flock(f, fcntl.LOCK_EX)
    os.rename(tmp, final)
    _journal, _journal_path, _journal_pid = f, final, os.getpid()
    return f


def record(uri: str, kind: str, name: str) -> None:
    """Append one object (before it is created) to this process's journal.

    A journal that cannot be written (e.g. a read-only home) costs only the sweep
    after a ``kill -9``: one warning, and the run goes on."""
    global _warned
    with _lock:
        try:
            f = _open()
            f.write(f"{uri}\t{kind}\t{name}\n")
            f.flush()
        except OSError as exc:
            if not _warned:
                _warned = True
                log.warning("libvirt journal not written (%s): a kill -9 of this run "
                            "would leave its volumes and networks", exc)


def finish() -> None:
    """Remove this process's journal: every object in it has been destroyed."""
    global _journal, _journal_path
    with _lock:
        if _journal is None or _journal_pid != os.getpid():
            return
        if _journal_path is not None:
            with contextlib.suppress(FileNotFoundError):
                _journal_path.unlink()
        _journal.close()
        _journal = _journal_path = None


@dataclass
class DeadJournal:
    """The journal of a process that died: its objects, and the held lock on it."""

    path: Path
    entries: list[tuple[str, str, str]]
    _file: IO[str]

    def remove(self) -> None:
        """Delete the journal (every object in it is gone) and let go of it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._file.close()

    def release(self) -> None:
        """Keep the journal for a later run (some object could not be destroyed)."""
        self._file.close()


def _parse(text: str) -> list[tuple[str, str, str]]:
    entries = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1] in ("domain", "volume", "network"):
            entries.append((parts[0], parts[1], parts[2]))
    return entries


@contextlib.contextmanager
def dead_journals() -> Iterator[list[DeadJournal]]:
    """The journals of dead processes, each locked by this one until removed or
    released (on leaving the block, what was neither is released)."""
    found: list[DeadJournal] = []
    try:
        d = journal_dir()
        paths = sorted(d.glob(f"*{SUFFIX}")) if d.is_dir() else []
        for path in paths:  # our own journal is locked by us: skipped as a live one
            try:
                f = open(path, encoding="utf-8")  # noqa: SIM115 (closed by remove/release)
            except FileNotFoundError:
                continue  # another run swept it meanwhile
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()  # its process lives
                continue
            if not path.exists():  # swept and removed by another run before our lock
                f.close()
                continue
            found.append(DeadJournal(path, _parse(f.read()), f))
        yield found
    finally:
        for j in found:
            if not j._file.closed:
                j.release()
