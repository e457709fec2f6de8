"""kolapy.interrupts: which handlers go in, and what an interrupt does (no VM)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from kolapy import interrupts
from kolapy.machine import process


@pytest.fixture
def handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        interrupts._workers.clear()


@pytest.mark.parametrize(("is_worker", "taken"), [(True, True), (False, False)],
                         ids=["worker", "controller"])
def test_ignored_sigint_is_taken_only_by_a_worker(handlers: None, is_worker: bool,
                                                  taken: bool) -> None:
    """A background run ignores SIGINT; execnet stops a worker with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    interrupts.install(is_worker=is_worker)
    assert (signal.getsignal(signal.SIGINT) is interrupts._interrupt) is taken
    assert signal.getsignal(signal.SIGTERM) is interrupts._interrupt


def test_someone_elses_handler_stays(handlers: None) -> None:
    def mine(signum: int, frame: object) -> None: ...

    signal.signal(signal.SIGTERM, mine)
    interrupts.install(is_worker=True)
    assert signal.getsignal(signal.SIGTERM) is mine


def test_interrupt_marks_the_run_and_signals_the_workers(
        handlers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "_interrupted", threading.Event())
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        interrupts.remember_worker(worker.pid)
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            interrupts._interrupt(signal.SIGTERM, None)
        assert worker.wait(10) == -signal.SIGTERM
        assert process.interrupted()
        assert not interrupts._workers
    finally:
        worker.kill()
        worker.wait()
