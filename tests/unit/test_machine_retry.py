"""kolapy.retry: a per-attempt bound AND a total deadline."""

from __future__ import annotations

import time

import pytest

from kolapy.errors import TimeoutExpired
from kolapy.retry import retry


def test_returns_first_non_none_value():
    calls = []

    def attempt(bound):
        calls.append(bound)
        return "v" if len(calls) == 3 else None

    assert retry(attempt, what="x", deadline=10, attempt_timeout=2, interval=0.01) == "v"
    assert calls == [2, 2, 2]


def test_attempt_bound_shrinks_near_the_deadline():
    bounds = []

    def attempt(bound):
        bounds.append(bound)
        time.sleep(0.2)

    with pytest.raises(TimeoutExpired):
        retry(attempt, what="x", deadline=0.7, attempt_timeout=5, interval=0.01)
    assert bounds[0] <= 0.7 and bounds[-1] < bounds[0]


def test_timeout_chains_the_last_error():
    def attempt(bound):
        raise OSError("connection refused")

    msg = "waiting for ssh: last error: connection refused"
    with pytest.raises(TimeoutExpired, match=msg) as e:
        retry(attempt, what="ssh", deadline=0.3, attempt_timeout=1, interval=0.05)
    assert isinstance(e.value.__cause__, OSError)


def test_give_up_on_propagates_at_once():
    class Fatal(Exception):
        pass

    start = time.monotonic()
    with pytest.raises(Fatal):
        retry(lambda b: (_ for _ in ()).throw(Fatal()), what="x", deadline=10,
              attempt_timeout=1, give_up_on=(Fatal,))
    assert time.monotonic() - start < 1
