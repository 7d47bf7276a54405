"""A run that has reached its final stage but is still open: it is sending its last message
(the confirmation of a restore, retried for up to a day). A new start for the account waits
briefly for it to close rather than answer with a deletion that is already over."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import WorkflowExecutionDescription, WorkflowHandle
from temporalio.service import RPCError

from contract.names import DELETION_STAGE
from contract.stages import Stage
from starter.errors import TooSoon

CLOSING_WAIT_SECONDS = 5.0


async def closed_after_its_final_stage(
    handle: WorkflowHandle[Any, Any], running: WorkflowExecutionDescription
) -> bool:
    """True once a running deletion in a final stage (RESTORED, ...) has closed, so that a
    new one may start; False for one still in progress. TooSoon if it has not closed yet."""
    stage = running.typed_search_attributes.get(DELETION_STAGE)
    if stage is None or stage not in Stage.__members__ or not Stage(stage).is_final:
        return False
    try:
        async with asyncio.timeout(CLOSING_WAIT_SECONDS):
            await handle.result(follow_runs=False)
    except TimeoutError:
        raise TooSoon(
            f"the last deletion of this account ended {stage} and is sending its confirmation:"
            " start again in a minute",
            retry_after=60,
        ) from None
    except RPCError:
        raise
    except Exception:  # the run failed or was terminated while closing: it is closed
        pass
    return True
