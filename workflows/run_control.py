"""How a run goes on beyond its steps: past the point of no return it refuses to be cancelled,
and at the end of a long wait's round it continues as new so that no history grows without
bound. Deterministic (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import NoReturn, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contract.models import CarriedState, DeletionRequest

T = TypeVar("T")


async def irrevocably(work: Awaitable[T]) -> T:
    """Runs `work` to its end whatever is asked: a cancellation through Temporal is refused
    (logged) and the shielded work goes on."""
    forward = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(forward)
        except asyncio.CancelledError:
            if forward.cancelling() or forward.cancelled():
                # Not a request to stop the deletion (that cancels only this outer task): the
                # worker is evicting the run from its cache and cancels every task.
                raise
            workflow.logger.warning("cancellation refused: purging has begun")


def history_is_long(limit: int) -> bool:
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit


async def continue_as_new(request: DeletionRequest, carried: CarriedState) -> NoReturn:
    """Goes on in a new run of the same deletion (same workflow id), once every handler has
    answered, carrying the state it needs in its input."""
    await workflow.wait_condition(workflow.all_handlers_finished)
    workflow.continue_as_new(request.model_copy(update={"carried": carried}))
