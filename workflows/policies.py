"""How long the saga's steps may take, how they retry, and how the workflow waits.

Deterministic helpers of the workflow (no I/O), imported by it inside the sandbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
"""Short database work: retried until the database answers again (it may be restarting)."""
SHORT = timedelta(seconds=30)
CHECK_TIMEOUT = timedelta(minutes=2)
PURGE_TIMEOUT = timedelta(hours=6)
CONFIRMATION_DELIVERY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=10),
)
CONFIRMATION_DEADLINE = timedelta(days=1)
MAX_REPLANS = 6
"""Releases refused although planning again adds no product, before operators are asked."""


def replan_backoff(replans: int) -> timedelta:
    """10 s, 20 s, 40 s, ... at most 10 minutes: about ten minutes in all before MAX_REPLANS."""
    return min(timedelta(seconds=10 * 2 ** (replans - 1)), timedelta(minutes=10))


def database_retry_except(*permanent: str) -> RetryPolicy:
    """DATABASE_RETRY, but the activity's permanent error types fail at once."""
    return dataclasses.replace(DATABASE_RETRY, non_retryable_error_types=list(permanent))


def purge_retry(attempts: int, *permanent: str) -> RetryPolicy:
    """A purge retries transient faults `attempts` times; then it is a pending task."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=attempts,
        non_retryable_error_types=list(permanent),
    )


async def wait_until(condition: Callable[[], bool], until: datetime) -> None:
    """Waits for the condition, at most until `until` (a durable timer)."""
    timeout = (until - workflow.now()).total_seconds()
    if timeout <= 0:
        return
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except TimeoutError:
        pass
