"""etcd.cluster's etcdctl helper: etcd's transient errors are retried, others are not."""

from __future__ import annotations

import pytest

from kolapy.errors import CommandFailedError
from kolapy.result import CommandResult
from kolapy.suites import etcd


class FakeMachine:
    """Answers each run with the next (rc, stderr) of a script; counts the calls."""

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        self.answers = answers
        self.commands: list[str] = []

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        self.commands.append(cmd)
        rc, err = self.answers.pop(0)
        return CommandResult(cmd, rc, "value\n" if rc == 0 else "", err, 0.1)


TIMED_OUT = "{...} Error: etcdserver: request timed out\n"


def test_transient_error_is_retried_until_success() -> None:
    m = FakeMachine([(1, TIMED_OUT), (1, "Error: etcdserver: leader changed\n"), (0, "")])
    assert etcd.etcdctl(m, "10.200.0.11", "get k") == "value\n"  # type: ignore[arg-type]
    assert len(m.commands) == 3
    assert "--endpoints=http://10.200.0.11:2379 get k" in m.commands[0]


def test_other_errors_fail_at_once() -> None:
    m = FakeMachine([(1, "Error: context deadline exceeded\n"), (0, "")])
    with pytest.raises(CommandFailedError, match="attempt 1 of 4"):
        etcd.etcdctl(m, "10.200.0.11", "put k v")  # type: ignore[arg-type]
    assert len(m.commands) == 1


def test_transient_errors_give_up_after_four_attempts() -> None:
    m = FakeMachine([(1, TIMED_OUT)] * 5)
    with pytest.raises(CommandFailedError, match="attempt 4 of 4"):
        etcd.etcdctl(m, "10.200.0.11", "put k v")  # type: ignore[arg-type]
    assert len(m.commands) == 4
