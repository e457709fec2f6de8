"""QEMU processes: launched so they die with us, tracked so any path can kill them all.

* ``PR_SET_PDEATHSIG`` = SIGKILL: if our process is killed (even ``kill -9``, or an
  xdist worker crash), the kernel kills QEMU.
* A new session: a terminal Ctrl-C reaches only us, so we collect logs and then
  kill QEMU ourselves instead of QEMU dying mid-write.
* A registry + ``atexit`` + :func:`kill_all` for signal handlers.

Caveat: the parent-death signal fires when the *thread* that started QEMU exits,
so start machines from a thread that lives as long as they do (pytest's main thread).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child of a threaded parent (xdist workers have threads)
# must not dlopen or allocate between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_live: dict[int, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()
_interrupted = threading.Event()


def mark_interrupted() -> None:
    """Note that the run is being interrupted (Ctrl-C, SIGTERM, xdist's SIGINT to a worker).

    Machines stopped from then on are killed at once instead of powered down, so
    every one of them is stopped and its artifacts written before a worker's
    grace runs out (xdist SIGKILLs a worker 10 s after asking it to stop).
    """
    _interrupted.set()


def interrupted() -> bool:
    """Whether :func:`mark_interrupted` was called in this process."""
    return _interrupted.is_set()


def _child_setup(parent_pid: int) -> None:
    """Runs in the child between fork and exec."""
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    # The parent may have died before prctl took effect: then nobody would reap us.
    if os.getppid() != parent_pid:
        os._exit(1)


def launch(
    argv: Sequence[str], *, stderr: IO[Any] | Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` tied to our life, in its own session; register it."""
    parent = os.getpid()
    err: IO[Any]
    close_err = False
    if isinstance(stderr, Path):
        err = stderr.open("wb")
        close_err = True
    else:
        err = stderr
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=lambda: _child_setup(parent),
            close_fds=True,
        )
    finally:
        if close_err:
            err.close()
    with _lock:
        _live[proc.pid] = proc
    return proc


def forget(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        _live.pop(proc.pid, None)


def terminate(proc: subprocess.Popen[bytes], grace: float = 5.0) -> int:
    """SIGTERM, wait ``grace`` seconds, then SIGKILL; always reaps. Returns the exit code."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
    rc = proc.wait()
    forget(proc)
    return rc


def live_pids() -> list[int]:
    """PIDs of the QEMU processes this process started that are still registered."""
    with _lock:
        return [pid for pid, p in _live.items() if p.poll() is None]


def kill_all() -> int:
    """SIGKILL every registered process and reap it; returns how many were alive."""
    with _lock:
        procs = list(_live.values())
        _live.clear()
    alive = 0
    for proc in procs:
        if proc.poll() is None:
            alive += 1
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            log.warning("process %d did not die after SIGKILL", proc.pid)
    if alive:
        log.info("killed %d QEMU process(es)", alive)
    return alive


def install_signal_handlers(signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> None:
    """Make SIGTERM/SIGHUP kill every QEMU and then unwind like Ctrl-C.

    Raising KeyboardInterrupt lets context managers and pytest write what they
    can; QEMU is already dead by then so a second signal cannot leak it.
    Call from the main thread.
    """
    for sig in signals:
        signal.signal(sig, _on_signal)


def _on_signal(signum: int, frame: object) -> None:
    mark_interrupted()
    kill_all()
    raise KeyboardInterrupt(f"signal {signum}")


atexit.register(kill_all)
