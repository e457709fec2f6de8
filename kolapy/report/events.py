"""The run's event log: machine events as JSON lines in ``<out>/events.jsonl``.

Machines boot on xdist workers, but the live view runs on the controller.
Every process appends one JSON object per line to the same file (``O_APPEND``:
one short ``write`` per event, so lines from several workers never mix) and the
controller reads what is new.  The file is also a timeline of the run for
later reading::

    {"t": 1764250000.5, "event": "booting", "machine": "gw0-1", "test": "basic", "worker": "gw0"}
    {"t": 1764250148.9, "event": "ready", "machine": "gw0-1", "test": "basic", "worker": "gw0"}
    {"t": 1764250170.2, "event": "stopped", "machine": "gw0-1", "test": "", "worker": "gw0"}

A test's body may log ``step`` events (its ``progress`` fixture: the phases of a
long test, shown by the live view as they happen).  Besides machine events,
each test that ran on machines logs one ``test`` event when its body ends
(``start``/``stop`` in epoch seconds, pytest's ``outcome``, the ``machines``);
the HTML report draws its timeline from both.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("kolapy.events")

EVENTS_FILE = "events.jsonl"
MACHINE_EVENTS = ("waiting", "booting", "ready", "failed", "stopping", "stopped")
TEST_EVENT = "test"
STEP_EVENT = "step"


def events_path(output_dir: Path) -> Path:
    """Where a run's event log lives."""
    return Path(output_dir) / EVENTS_FILE


def emit(
    output_dir: Path,
    event: str,
    machine: str,
    *,
    test: str = "",
    worker: str = "",
    error: BaseException | str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one machine event; best effort (an event never breaks a boot)."""
    record: dict[str, Any] = {
        "t": round(time.time(), 3),
        "event": event,
        "machine": machine,
        "test": test,
        "worker": worker,
    }
    if error is not None:
        text = str(error).strip() or type(error).__name__
        record["error"] = text.splitlines()[0][:300]
    if detail:
        record.update({k: v for k, v in detail.items() if k not in record})
    line = (json.dumps(record) + "\n").encode()
    path = events_path(output_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not log machine event to %s: %s", path, exc)


def emit_test(
    output_dir: Path,
    test: str,
    machines: list[str],
    start: float,
    stop: float,
    outcome: str,
    worker: str = "",
) -> None:
    """Log that ``test`` ran on ``machines`` from ``start`` to ``stop`` (epoch seconds)."""
    emit(
        output_dir,
        TEST_EVENT,
        machines[0] if machines else "",
        test=test,
        worker=worker,
        detail={"machines": machines, "start": round(start, 3), "stop": round(stop, 3),
                "outcome": outcome},
    )


def emit_step(output_dir: Path, test: str, text: str, machine: str = "",
              worker: str = "") -> None:
    """Log a step of ``test``'s body (e.g. "init-cluster done after 412 s") for the live view."""
    emit(output_dir, STEP_EVENT, machine, test=test, worker=worker, detail={"text": text})


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event of an event log (damaged lines skipped; a missing file has none)."""
    return EventTail(path, from_start=True).read()


class EventTail:
    """Reads the events appended to a file since the last :meth:`read`.

    Starts at the file's current end, so events of an earlier run into the
    same output dir are not replayed.  A line still being written is left for
    the next read.
    """

    def __init__(self, path: Path, from_start: bool = False) -> None:
        self.path = Path(path)
        self._offset = 0 if from_start else _size(self.path)
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        """The complete events written since the previous call (oldest first)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        events = []
        for raw in lines:
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a foreign or damaged line: skip it, keep reading
            if isinstance(event, dict):
                events.append(event)
        return events


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
