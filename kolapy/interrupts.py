"""Ctrl-C, SIGTERM and the stop of an xdist worker all unwind like Ctrl-C, in time.

An interrupted run must stop every machine and write its artifacts.  Three
things stand in the way, and this module handles each:

* SIGTERM's default action kills the process at once: every process of the run
  (controller and xdist workers) turns it into ``KeyboardInterrupt``.
* A run started in the background (``cmd &``, ``nohup``, many CI runners) has
  SIGINT ignored, and its xdist workers inherit that.  execnet stops a worker by
  sending it SIGINT five seconds after asking it to exit, then the controller
  SIGKILLs it five seconds later: an ignored SIGINT meant no teardown at all (no
  artifacts, a leaked work dir).  A worker therefore handles SIGINT even when it
  was ignored: no terminal Ctrl-C can reach a background job anyway.
* Those ten seconds are short: the controller, interrupted itself, sends each of
  its workers SIGTERM at once, and every process marks the run interrupted
  (:func:`kolapy.machine.process.mark_interrupted`), so machines are killed
  rather than powered down.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from kolapy.machine import process

_workers: set[int] = set()


def install(*, is_worker: bool) -> None:
    """Install the handlers (from the main thread, in pytest_configure)."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _interrupt)
    current = signal.getsignal(signal.SIGINT)
    if current is signal.default_int_handler or (is_worker and current == signal.SIG_IGN):
        signal.signal(signal.SIGINT, _interrupt)


def remember_worker(pid: int) -> None:
    """An xdist worker of this controller: signalled when the controller is interrupted."""
    _workers.add(pid)


def _interrupt(signum: int, frame: Any) -> None:
    process.mark_interrupted()
    for pid in sorted(_workers):  # they start their teardown now, not after execnet's 5 s
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    _workers.clear()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise KeyboardInterrupt(f"signal {signum}")
