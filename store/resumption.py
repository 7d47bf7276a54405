"""What a new start or an operator needs to know about a deletion whose run ended without
closing it (terminated, or failed): did its purge begin, and may its account be unfrozen.

A run records PURGING before it schedules any purge, and every purge records its progress, so
a deletion whose row never reached a purging stage and that has no progress purged nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from contract.cooling_off import REMINDER_BEFORE_END, CoolingOffWindow, Notice
from contract.models import CarriedState
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


async def resumption(pool: asyncpg.Pool, account_id: str) -> CarriedState:
    """Where a new start resumes the deletion of a frozen account whose run ended: at the
    freeze if no purge began, else at PURGING; confirmed already (no new code). A run ended in
    its cooling-off resumes the same window (its end is the row's deadline): the user keeps
    the time they were told, whatever the new start's policy."""
    began = await purging_began(pool, account_id)
    requested_at = await unclosed_request_time(pool, account_id) or datetime.now(UTC)
    window_end: datetime | None = await pool.fetchval(
        "select deadline from deletions where workflow_id = $1 and closed_at is null"
        " and stage = $2",
        workflow_id_for(account_id),
        Stage.COOLING_OFF.value,
    )
    if window_end is not None and not began:
        sent = [Notice.STARTED]
        if datetime.now(UTC) >= window_end - REMINDER_BEFORE_END:
            sent.append(Notice.REMINDER)  # the ended run's, most likely
        window = CoolingOffWindow(window_id=str(uuid.uuid4()), ends_at=window_end, notified=sent)
        return CarriedState(
            resume_at=Stage.COOLING_OFF,
            requested_at=requested_at,
            verified=True,
            cooling_off=window,
        )
    return CarriedState(
        resume_at=Stage.PURGING if began else Stage.FREEZING,
        requested_at=requested_at,
        verified=True,
    )


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
