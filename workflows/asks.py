"""What the update validators refuse: a request that could change nothing is rejected before it
reaches history, with a failure type the client turns into an honest answer (409, 429).

Rejected updates leave no event behind, so a storm of requests cannot grow a run's history;
signals, which Temporal records whatever they ask, stay for callers that need no answer.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contract.errors import ALREADY_ASKED, CANCEL_REFUSED, TOO_SOON, WRONG_STAGE
    from contract.stages import Stage


def refuse_unless(allowed: bool, stage: Stage, action: str) -> None:
    if not allowed:
        raise ApplicationError(f"cannot {action} in stage {stage.value}", type=WRONG_STAGE)


def refuse_if_asked(asked: bool, what: str) -> None:
    """The request already stands: a second one would change nothing (the caller treats this
    as the effect of one)."""
    if asked:
        raise ApplicationError(f"{what} is already asked for", type=ALREADY_ASKED)


def refuse_if_sooner(last: datetime | None, cooldown: timedelta, what: str) -> None:
    """Refuses until `cooldown` has passed since `last`; the details hold the seconds to wait."""
    if last is None:
        return
    wait = (last + cooldown - workflow.now()).total_seconds()
    if wait > 0:
        seconds = math.ceil(wait)
        raise ApplicationError(
            f"the last {what} was moments ago: ask again in {seconds} seconds",
            seconds,
            type=TOO_SOON,
        )


def refuse_cancel(cancellable: bool, stage: Stage, restoring: bool = False) -> None:
    if restoring:
        raise ApplicationError(
            "the account is being restored: the deletion ends without a cancellation",
            type=CANCEL_REFUSED,
        )
    if not cancellable:
        raise ApplicationError(
            f"the deletion cannot be cancelled in stage {stage.value}"
            + ("" if stage.is_final else ": purging has begun and cannot be undone"),
            type=CANCEL_REFUSED,
        )
