"""What a new start or an operator needs to know about a deletion whose run ended without
closing it (terminated, or failed): did its purge begin, and may its account be unfrozen.

A run records PURGING before it schedules any purge, and every purge records its progress, so
a deletion whose row never reached a purging stage and that has no progress purged nothing.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from contract.names import workflow_id_for
from contract.stages import Stage
from store.audit import audit
from store.stage_log import close_recorded_deletion

_PURGING_STAGES = [
    Stage.PURGING.value,
    Stage.PURGE_BLOCKED.value,
    Stage.RELEASING_IDENTIFIERS.value,
]


async def purging_began(pool: asyncpg.Pool, account_id: str) -> bool:
    began: bool = await pool.fetchval(
        """
        select exists (
                   select 1 from deletions
                   where account_id = $1 and closed_at is null and stage = any($2::text[]))
            or exists (select 1 from purge_progress where account_id = $1)
            or exists (select 1 from product_purges where account_id = $1)
        """,
        account_id,
        _PURGING_STAGES,
    )
    return began


async def unclosed_request_time(pool: asyncpg.Pool, account_id: str) -> datetime | None:
    """When the deletion left open by an ended run was requested, if one was."""
    requested_at: datetime | None = await pool.fetchval(
        "select requested_at from deletions where workflow_id = $1 and closed_at is null",
        workflow_id_for(account_id),
    )
    return requested_at


async def unfreeze_after_ended_run(pool: asyncpg.Pool, account_id: str, operator: str) -> bool:
    """Unfreezes an account whose deletion run ended before purging began, closes the row it
    left open (CANCELLED), and audits who did it. False when the account was not frozen."""
    workflow_id = workflow_id_for(account_id)
    async with pool.acquire() as conn, conn.transaction():
        unfrozen = await conn.fetchval(
            """
            update accounts set status = 'active', frozen_at = null
            where account_id = $1 and status = 'frozen' returning account_id
            """,
            account_id,
        )
        if unfrozen is None:
            return False
        if await conn.fetchval(
            "select closed_at is null from deletions where workflow_id = $1", workflow_id
        ):
            await close_recorded_deletion(conn, workflow_id, Stage.CANCELLED.value)
        await audit(conn, account_id, workflow_id, "account_unfrozen_by_operator", by=operator)
    return True
