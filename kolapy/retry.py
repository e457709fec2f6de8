"""One retry combinator for every wait in kolapy.

Each attempt is bounded (``attempt_timeout``) and the whole wait has a total
deadline; on the last failure the most recent exception is chained into the
:class:`~kolapy.errors.TimeoutExpired` so the report says *why* it never worked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kolapy.errors import TimeoutExpired

T = TypeVar("T")


def retry(
    attempt: Callable[[float], T | None],
    *,
    what: str,
    deadline: float,
    attempt_timeout: float,
    interval: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    give_up_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``attempt(per_attempt_timeout)`` until it returns a value that is not None.

    ``deadline`` is the total time in seconds; ``attempt_timeout`` bounds one
    attempt (the attempt receives the bound it must honour, shortened near the
    deadline).  Exceptions in ``give_up_on`` propagate at once; exceptions in
    ``retry_on`` count as a failed attempt.
    """
    __tracebackhide__ = True
    start = time.monotonic()
    end = start + deadline
    last: BaseException | None = None
    attempts = 0
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        attempts += 1
        try:
            value = attempt(max(0.1, min(attempt_timeout, remaining)))
        except give_up_on:
            raise
        except retry_on as exc:
            last = exc
        else:
            if value is not None:
                return value
        time.sleep(max(0.0, min(interval, end - time.monotonic())))
    reason = f": last error: {last}" if last is not None else ""
    raise TimeoutExpired(
        f"timed out after {deadline:.0f}s ({attempts} attempts) waiting for {what}{reason}"
    ) from last
