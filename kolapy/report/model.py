"""What happened to each test: the records every report is written from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Result(StrEnum):
    """A test's outcome.  ERROR = an infrastructure problem, not the test's own failure."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    WARN = "WARN"
    ERROR = "ERROR"

    @property
    def kola(self) -> str:
        """The value in kola's report.json, which has no ERROR (it is a FAIL there)."""
        return "FAIL" if self is Result.ERROR else self.value

    @property
    def failed(self) -> bool:
        """FAIL or ERROR."""
        return self in (Result.FAIL, Result.ERROR)


# Worst first: a parent takes the worst result of its subtests.
_RANK = {Result.ERROR: 0, Result.FAIL: 1, Result.WARN: 2, Result.PASS: 3, Result.SKIP: 4}


def worst(results: Iterable[Result]) -> Result:
    """The worst of ``results`` (ERROR > FAIL > WARN > PASS > SKIP); SKIP for none."""
    return min(results, key=_RANK.__getitem__, default=Result.SKIP)


@dataclass
class SubtestRecord:
    """One reported unit: a kola test, or one subtest of one (``parent/child``)."""

    name: str
    """Full kola name (``basic/ssh-port`` for a subtest)."""
    result: Result = Result.PASS
    duration_s: float = 0.0
    output: str = ""
    """Failure/error text (command, rc, stderr) or the reason of a WARN."""
    message: str = ""
    """One-line failure message (JUnit's ``message`` attribute)."""
    reason: str = ""
    """Skip reason (e.g. the denylist tracker)."""
    machines: list[str] = field(default_factory=list)
    restored: dict[str, str] = field(default_factory=dict)
    """Machines restored from a saved one (name -> the saved machine); the rest booted."""
    cluster_members: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Cluster members (name -> member index, address, config digest, ignition.json
    artifact): which config each member booted with."""
    console: str = ""
    """This test's slice of the serial console."""
    journal: str = ""
    """This test's slice of the journal."""
    warnings: list[str] = field(default_factory=list)
    attempt: int = 1
    """1 for the first run; 2 for a ``--rerun`` of a failed test."""
    rerun_of: str | None = None
    """For attempt > 1: the name of the test this re-runs."""
    nodeid: str = ""
    parent: str = ""
    """Kola name of the test this subtest belongs to ("" for a top-level test)."""


@dataclass
class TestRecord(SubtestRecord):
    """A top-level kola test, with its subtests (if any)."""

    __test__ = False  # not a pytest test class

    subtests: list[SubtestRecord] = field(default_factory=list)

    @property
    def subtest_names(self) -> list[str]:
        """Full names of the subtests, in order."""
        return [s.name for s in self.subtests]


def iter_all(records: Iterable[TestRecord]) -> Iterator[SubtestRecord]:
    """Each top-level record followed by its subtests."""
    for record in records:
        yield record
        yield from record.subtests


def overall_result(records: Iterable[TestRecord]) -> str:
    """kola's top-level result: FAIL if any test failed or errored, else PASS."""
    return "FAIL" if any(r.result.failed for r in iter_all(records)) else "PASS"
