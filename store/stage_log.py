"""The log of stage changes (`deletion_events`, migration 0012): written in the transaction that
records each stage, so that an event exists if and only if its stage was recorded.

It is the outbox of the console backend's `deletion.stage_changed` events (`store/event_relay.py`
delivers them) and the history `GET /v1/deletions` pages over (`starter/records.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from store.db import Connection


async def next_change_seq(conn: Connection) -> int:
    """The next place in the order of stage changes. The counter's row stays locked until the
    caller's transaction ends, so places are handed out in commit order: take it last."""
    seq: int = await conn.fetchval(
        "update deletion_event_counter set last_seq = last_seq + 1 returning last_seq"
    )
    return seq


async def log_stage_change(
    conn: Connection,
    seq: int,
    *,
    workflow_id: str,
    account_id: str,
    stage: str,
    previous_stage: str | None,
    pending_tasks: int,
    deadline: datetime | None,
    closed: bool,
) -> None:
    """Appends the change (the event's id, its `webhook-id`, is made here once for good)."""
    await conn.execute(
        """
        insert into deletion_events (seq, event_id, workflow_id, account_id, stage,
            previous_stage, pending_tasks, deadline, closed)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        seq,
        uuid.uuid4(),
        workflow_id,
        account_id,
        stage,
        previous_stage,
        pending_tasks,
        deadline,
        closed,
    )


async def close_recorded_deletion(
    conn: Connection, workflow_id: str, stage: str
) -> tuple[str, float] | None:
    """Closes the deletion's row in the final `stage`, with its logged change; does nothing
    when the row is in that stage already (a retry). Returns the previous stage and the seconds
    spent in it, None when nothing changed. For the writers of the row other than
    `record_progress` (finalize, an operator's unfreeze); the caller holds a transaction."""
    row = await conn.fetchrow(
        """
        select stage, account_id, extract(epoch from now() - stage_changed_at)::float8 as since
        from deletions where workflow_id = $1 for update
        """,
        workflow_id,
    )
    if row is None or row["stage"] == stage:
        return None
    seq = await next_change_seq(conn)
    await conn.execute(
        """
        update deletions set stage = $2, change_seq = $3, stage_changed_at = now(),
            updated_at = now(), closed_at = coalesce(closed_at, now()), deadline = null
        where workflow_id = $1
        """,
        workflow_id,
        stage,
        seq,
    )
    await log_stage_change(
        conn,
        seq,
        workflow_id=workflow_id,
        account_id=row["account_id"],
        stage=stage,
        previous_stage=row["stage"],
        pending_tasks=0,
        deadline=None,
        closed=True,
    )
    return row["stage"], row["since"]
