"""The account's side of the saga: freeze and its compensation, releasing the identifiers,
finalizing, and keeping the deletion's row in PostgreSQL in step with the workflow."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import (
    contact_channel,
    expire_undelivered,
    record_outgoing,
    scrub_undelivered,
)
from activities.purge import PurgeActivities
from contract.errors import ACCOUNT_MISSING, PURGE_INCOMPLETE, PURGES_UNFINISHED
from contract.models import (
    AccountRef,
    DeletionReceipt,
    FinalizeInput,
    ProductReceipt,
    ProgressRecord,
)
from contract.stages import Stage
from core.business_metrics import BusinessMetrics
from registry.catalog import Catalog
from store.audit import audit
from store.db import Connection
from store.stage_log import close_recorded_deletion, log_stage_change, next_change_seq


class AccountActivities:
    def __init__(self, pool: asyncpg.Pool, purges: PurgeActivities, catalog: Catalog) -> None:
        self._pool = pool
        self._purges = purges
        self._catalog = catalog

    @activity.defn
    async def record_progress(self, record: ProgressRecord) -> None:
        """Upserts the deletion's row; the HTTP API reads it once the run is closed.

        A change of stage is logged in the same transaction (`store/stage_log.py`: the console
        backend's event and the list's order), so that the event exists if and only if the
        stage was recorded; a call that changes no stage (`StageMachine.show`) or a retry of
        one that committed logs nothing.
        """
        info = activity.info()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                select stage, run_id, closed_at,
                    extract(epoch from now() - stage_changed_at)::float8 as since
                from deletions where workflow_id = $1 for update
                """,
                record.workflow_id,
            )
            recorded = row["stage"] if row is not None else None
            same_run = row is not None and row["run_id"] == record.run_id
            previous = recorded if same_run else None
            # A closed row of another run is the account's previous deletion: this is a new one.
            new_deletion = row is None or (row["closed_at"] is not None and not same_run)
            changed = new_deletion or recorded != record.stage.value
            seq = await next_change_seq(conn) if changed else None
            await conn.execute(
                """
                insert into deletions (workflow_id, account_id, run_id, stage, requested_by,
                    pending_tasks, products, closed_at, receipt, deadline, change_seq,
                    stage_changed_at)
                values ($1, $2, $3, $4, $5, $6, $7, case when $8 then now() end, $9, $10,
                    coalesce($11, 0), now())
                on conflict (workflow_id) do update set
                    change_seq = coalesce($11::bigint, deletions.change_seq),
                    stage_changed_at = case when $11::bigint is null
                        then deletions.stage_changed_at else now() end,
                    run_id = excluded.run_id, stage = excluded.stage,
                    deadline = excluded.deadline,
                    requested_by = excluded.requested_by,
                    requested_at = case when deletions.run_id = excluded.run_id
                                        then deletions.requested_at else now() end,
                    pending_tasks = excluded.pending_tasks, products = excluded.products,
                    updated_at = now(),
                    closed_at = case when $8 then coalesce(
                        case when deletions.run_id = excluded.run_id then deletions.closed_at end,
                        now()) end,
                    receipt = case when deletions.run_id = excluded.run_id
                                   then coalesce(excluded.receipt, deletions.receipt)
                                   else excluded.receipt end
                """,
                record.workflow_id,
                record.account_id,
                record.run_id,
                record.stage.value,
                record.requested_by,
                [task.model_dump(mode="json") for task in record.pending_tasks],
                {p.product: p.model_dump(mode="json") for p in record.products},
                record.closed,
                record.receipt.model_dump(mode="json") if record.receipt else None,
                record.deadline,
                seq,
            )
            if seq is not None:
                await log_stage_change(
                    conn,
                    seq,
                    workflow_id=record.workflow_id,
                    account_id=record.account_id,
                    stage=record.stage.value,
                    previous_stage=None if new_deletion else recorded,
                    pending_tasks=len(record.pending_tasks),
                    deadline=record.deadline,
                    closed=record.closed,
                )
            if previous != record.stage.value:
                await audit(
                    conn,
                    record.account_id,
                    record.workflow_id,
                    "stage_changed",
                    stage=record.stage.value,
                    previous=previous,
                    pending_tasks=len(record.pending_tasks),
                    attempt=info.attempt,
                )
        if changed:
            BusinessMetrics(activity.metric_meter()).stage_changed(
                record.stage.value,
                left=None if new_deletion else recorded,
                seconds=None if new_deletion or row is None else row["since"],
                new=new_deletion,
                final=record.closed,
            )

    @activity.defn
    async def freeze_account(self, ref: AccountRef) -> None:
        """Sign-in disabled, sessions and API keys revoked, no new purchases (status frozen)."""
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                "select status from accounts where account_id = $1 for update", ref.account_id
            )
            if status is None:
                raise ApplicationError("no such account", type=ACCOUNT_MISSING, non_retryable=True)
            if status == "frozen":
                return
            await conn.execute(
                "update accounts set status = 'frozen', frozen_at = now() where account_id = $1",
                ref.account_id,
            )
            sessions = await conn.execute(
                "update sessions set revoked_at = now()"
                " where account_id = $1 and revoked_at is null",
                ref.account_id,
            )
            keys = await conn.execute(
                "update api_keys set revoked_at = now()"
                " where account_id = $1 and revoked_at is null",
                ref.account_id,
            )
            await audit(
                conn,
                ref.account_id,
                ref.workflow_id,
                "account_frozen",
                sessions_revoked=_count(sessions),
                api_keys_revoked=_count(keys),
            )

    @activity.defn
    async def unfreeze_account(self, ref: AccountRef) -> None:
        """Compensation of freeze. Revoked sessions and keys stay revoked: sign in again."""
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await conn.execute(
                """
                update accounts set status = 'active', frozen_at = null
                where account_id = $1 and status = 'frozen'
                """,
                ref.account_id,
            )
            if _count(updated):
                await audit(conn, ref.account_id, ref.workflow_id, "account_unfrozen")

    @activity.defn
    async def release_identifiers(self, ref: AccountRef) -> datetime:
        """Releases user name, email and phone; refuses while any product's purge is unfinished.

        Every product is probed again, under the account's lock, in the transaction that
        releases: one purged early may have written rows since (late rows). Those are purged
        again here, inline, and the release is tried once more. Inline, because the workflow
        re-plans only the products it has not seen succeed: refusing would send it back to
        PURGING with nothing to do, and here again, for ever. The re-purge is the product's
        own idempotent, counted purge; the receipt that `finalize_deletion` records reads the
        counts, late rows included. The usual account has none: one probe each, no re-purge.
        """
        released_at = await self._release_if_clean(ref)
        if released_at is None:
            await self._purges.purge_late_rows(ref.account_id, ref.workflow_id)
            released_at = await self._release_if_clean(ref)
        if released_at is None:
            # Rows written again since the re-purge: the retry purges them.
            raise ApplicationError(
                "rows keep being written after the purge: purging them again",
                type=PURGE_INCOMPLETE,
            )
        return released_at

    async def _release_if_clean(self, ref: AccountRef) -> datetime | None:
        """Releases the identifiers when every product is purged and probes clean, under the
        account's lock; None (nothing released) when a product holds rows again."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "select 1 from accounts where account_id = $1 for update", ref.account_id
            )
            finished = {
                row["product"]
                for row in await conn.fetch(
                    "select product from product_purges where account_id = $1", ref.account_id
                )
            }
            unfinished = sorted(set(self._catalog.names()) - finished)
            if unfinished:
                raise ApplicationError(
                    f"purges unfinished: {', '.join(unfinished)}",
                    type=PURGES_UNFINISHED,
                    non_retryable=True,
                )
            if dirty := await _holding_rows(conn, self._catalog, ref.account_id):
                activity.logger.info("late rows in %s: purging them again", ", ".join(dirty))
                return None
            released_at: datetime | None = await conn.fetchval(
                "select max(released_at) from identifier_claims where account_id = $1",
                ref.account_id,
            )
            released = await conn.execute(
                """
                update identifier_claims set released_at = now(), normalized_value = null
                where account_id = $1 and released_at is null
                """,
                ref.account_id,
            )
            if _count(released) or released_at is None:
                released_at = await conn.fetchval("select now()")
                await audit(
                    conn,
                    ref.account_id,
                    ref.workflow_id,
                    "identifiers_released",
                    claims=_count(released),
                )
        assert released_at is not None
        return released_at

    @activity.defn
    async def finalize_deletion(self, request: FinalizeInput) -> DeletionReceipt:
        """Marks the account deleted, closes its record with the receipt, sends a confirmation."""
        async with self._pool.acquire() as conn, conn.transaction():
            account = await conn.fetchrow(
                "select status, email, phone from accounts where account_id = $1 for update",
                request.account_id,
            )
            if account is None:
                raise ApplicationError("no such account", type=ACCOUNT_MISSING, non_retryable=True)
            stored = await conn.fetchval(
                "select receipt from deletions where workflow_id = $1 and stage = $2",
                request.workflow_id,
                Stage.DELETED.value,
            )
            if account["status"] == "deleted" and stored is not None:
                return DeletionReceipt.model_validate(stored)
            released_at = await conn.fetchval(
                "select max(released_at) from identifier_claims where account_id = $1",
                request.account_id,
            )
            closed_at = await conn.fetchval("select now()")
            receipt = DeletionReceipt(
                account_id=request.account_id,
                workflow_id=request.workflow_id,
                outcome=Stage.DELETED,
                requested_by=request.requested_by,
                requested_at=request.requested_at,
                closed_at=closed_at,
                products=await _as_counted(conn, request.account_id, request.products),
                identifiers_released_at=released_at,
            )
            # No message of the account keeps its email or phone once it is deleted: those not
            # delivered (a code whose gateway was down, in a cancelled run) lose them now, and
            # the confirmation below keeps its recipient only until it is delivered or expires.
            await scrub_undelivered(conn, request.account_id, "account deleted before delivery")
            await expire_undelivered(conn)
            channel, recipient = contact_channel(account["email"], account["phone"])
            body = (
                "Your cloud account has been deleted. Its data was purged from "
                f"{len(request.products)} products; the deletion cannot be undone."
            )
            if recipient:
                # Delivered by the workflow's next activity, from the outbox: the account
                # row no longer holds the address once this transaction commits.
                await record_outgoing(
                    conn,
                    idempotency_key=f"deleted-{request.workflow_id}",
                    account_id=request.account_id,
                    channel=channel,
                    recipient=recipient,
                    template="account_deleted",
                    body=body,
                )
            await conn.execute(
                """
                update accounts set status = 'deleted', deleted_at = $2, frozen_at = null,
                    user_name = null, email = null, phone = null, display_name = null
                where account_id = $1
                """,
                request.account_id,
                closed_at,
            )
            closed = await close_recorded_deletion(conn, request.workflow_id, Stage.DELETED.value)
            await conn.execute(
                """
                update deletions set stage = $2, closed_at = $3, updated_at = now(), receipt = $4
                where workflow_id = $1
                """,
                request.workflow_id,
                Stage.DELETED.value,
                closed_at,
                receipt.model_dump(mode="json"),
            )
            await audit(
                conn,
                request.account_id,
                request.workflow_id,
                "account_deleted",
                products={p.product: p.rows for p in request.products},
            )
        metrics = BusinessMetrics(activity.metric_meter())
        products = receipt.products
        if closed is not None:
            left, seconds = closed
            metrics.stage_changed(
                Stage.DELETED.value, left=left, seconds=seconds, new=False, final=True
            )
        metrics.rows_purged(
            {p.product: sum(t.rows for t in p.tables) or p.reported_rows or 0 for p in products}
        )
        return receipt


async def _holding_rows(conn: Connection, catalog: Catalog, account_id: str) -> list[str]:
    """The `sql` products whose probe finds rows of the account (read-only)."""
    dirty = []
    for product in catalog.sql:
        counts = await conn.fetchrow(product.probe_sql, account_id)
        if counts is not None and any(counts.values()):
            dirty.append(product.name)
    return dirty


async def _as_counted(
    conn: Connection, account_id: str, products: list[ProductReceipt]
) -> list[ProductReceipt]:
    """The products' receipts with each table's rows as `purge_progress` counts them: the
    workflow's receipts were made when each purge finished, before any late rows were purged
    again by `release_identifiers`."""
    counted = {
        (row["product"], row["table_name"]): int(row["rows"])
        for row in await conn.fetch(
            "select product, table_name, rows from purge_progress where account_id = $1",
            account_id,
        )
    }
    return [
        product.model_copy(
            update={
                "tables": [
                    table.model_copy(
                        update={"rows": counted.get((product.product, table.table), table.rows)}
                    )
                    for table in product.tables
                ]
            }
        )
        for product in products
    ]


def _count(status: str) -> int:
    """Rows affected, from asyncpg's status tag (`UPDATE 3`, `DELETE 0`)."""
    return int(status.rsplit(" ", 1)[-1])
