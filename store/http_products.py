"""What `http` products reported: the request of each deletion and product (with the purge
activity's task token, sealed), its result, and the callback ids already accepted.

Shared by the worker's activities (which send the request and poll) and the API's callback
endpoint (which records a result and completes the activity): whichever learns the result
first records it, once; the other finds it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from contract.models import ProductDriver, ProductReceipt
from store.db import Connection

CALLBACK_IDS_KEPT = timedelta(hours=1)
"""Accepted callback ids are remembered this long: a callback's signed timestamp must be
within five minutes of now, so an older id could not be replayed anyway."""


@dataclass(frozen=True)
class HttpResult:
    """A product's word on one deletion: `completed` with its row count, or `failed`."""

    status: str
    rows: int | None
    reason: str | None
    at: datetime

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def receipt(self, product: str) -> ProductReceipt:
        return ProductReceipt(
            product=product,
            tables=[],
            completed_at=self.at,
            verified_clean=False,
            driver=ProductDriver.HTTP,
            reported_rows=self.rows or 0,
        )


def _result(row: asyncpg.Record | None) -> HttpResult | None:
    if row is None or row["status"] == "pending":
        return None
    return HttpResult(row["status"], row["rows"], row["reason"], row["result_at"])


async def begin_request(
    pool: asyncpg.Pool, workflow_id: str, product: str, account_id: str, sealed_token: bytes
) -> HttpResult | None:
    """Before the request is sent: keeps this attempt's sealed token, so that a callback
    arriving at once finds it, and clears an earlier failure (this is a retry). Returns the
    recorded completion instead when the product already completed: nothing is sent again."""
    async with pool.acquire() as conn, conn.transaction():
        updated = await conn.fetchval(
            """
            insert into http_product_requests (workflow_id, product, account_id, task_token)
            values ($1, $2, $3, $4)
            on conflict (workflow_id, product) do update
                set task_token = excluded.task_token, status = 'pending', rows = null,
                    reason = null, requested_at = now(), result_at = null
                where http_product_requests.status <> 'completed'
            returning status
            """,
            workflow_id,
            product,
            account_id,
            sealed_token,
        )
        if updated is not None:
            return None
        return await result_of(conn, workflow_id, product)


async def result_of(
    conn: Connection | asyncpg.Pool, workflow_id: str, product: str
) -> HttpResult | None:
    """The recorded result, or None while the product has not answered."""
    row = await conn.fetchrow(
        "select status, rows, reason, result_at from http_product_requests"
        " where workflow_id = $1 and product = $2",
        workflow_id,
        product,
    )
    return _result(row)


async def requested(conn: Connection, workflow_id: str, product: str) -> bool:
    """Whether this deletion's request to the product exists (else a callback is unknown)."""
    found = await conn.fetchval(
        "select 1 from http_product_requests where workflow_id = $1 and product = $2",
        workflow_id,
        product,
    )
    return found is not None


async def record_result(
    conn: Connection,
    workflow_id: str,
    product: str,
    *,
    status: str,
    rows: int | None = None,
    reason: str | None = None,
) -> tuple[HttpResult, bool, bytes | None]:
    """Records the product's result unless one is recorded already (the first one stands), and
    clears the sealed token. Returns the result that stands, whether it is this one, and the
    sealed token it cleared (None when no activity awaited the result)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "select status, rows, reason, result_at, task_token from http_product_requests"
            " where workflow_id = $1 and product = $2 for update",
            workflow_id,
            product,
        )
        if row is None:
            raise LookupError(f"no request of {workflow_id} to {product}")
        if (standing := _result(row)) is not None:
            return standing, False, None
        updated = await conn.fetchrow(
            """
            update http_product_requests
            set status = $3, rows = $4, reason = $5, result_at = now(), task_token = null
            where workflow_id = $1 and product = $2
            returning status, rows, reason, result_at
            """,
            workflow_id,
            product,
            status,
            rows,
            reason,
        )
        result = _result(updated)
        assert result is not None
        return result, True, row["task_token"]


async def remember_callback(conn: Connection, product: str, webhook_id: str) -> bool:
    """Records a callback's id; False when it was seen before (a replay). Forgets ids older
    than CALLBACK_IDS_KEPT, which no signature check accepts any more."""
    await conn.execute(
        "delete from http_product_callbacks where received_at < now() - $1::interval",
        CALLBACK_IDS_KEPT,
    )
    inserted = await conn.fetchval(
        "insert into http_product_callbacks (product, webhook_id) values ($1, $2)"
        " on conflict do nothing returning 1",
        product,
        webhook_id,
    )
    return inserted is not None
