"""The purge of one product for one account, generic over the product's declaration.

Exactly once in effect: each batch is deleted (or anonymised) in the same transaction that
adds its row count to `purge_progress`, so a crash at any point loses no count and repeats
no work; the heartbeat carries the table the purge had reached, so a retry resumes there.
"""

from __future__ import annotations

import time
from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contract.errors import PURGE_INCOMPLETE, PURGE_REFUSED, UNKNOWN_PRODUCT
from contract.models import (
    PlannedProduct,
    ProductReceipt,
    PurgeProductInput,
    RecordPurgeInput,
    TableReceipt,
)
from registry.catalog import Catalog
from registry.products import Product, TablePurge
from store.audit import audit

HEARTBEAT_AFTER = timedelta(seconds=1)
"""A purge heartbeats once it has run this long (and at most a quarter of its heartbeat
timeout). Each heartbeat is a write to Temporal's persistence: the usual account, each table
done in a batch or two, finishes sooner and sends none; its retry redoes under a second."""


class PurgeActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog: Catalog,
        *,
        batch_size: int = 5000,
        heartbeat_after: timedelta = HEARTBEAT_AFTER,
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self._batch_size = batch_size
        self._heartbeat_after = heartbeat_after

    @activity.defn
    async def list_products(self) -> list[str]:
        """The registry's product names: the plan of runs that began before drivers existed
        (their histories recorded this; `plan_products` replaced it)."""
        return self._catalog.names()

    @activity.defn
    async def plan_products(self) -> list[PlannedProduct]:
        """The registry's products with their drivers, for the workflow to record in its
        history (a replay plans the same products, a later plan sees a new one)."""
        return self._catalog.plan()

    @activity.defn
    async def record_product_purge(self, request: RecordPurgeInput) -> ProductReceipt:
        """Records that a product outside this database (worker, http, manual) finished, once:
        a repeat returns the first record's time. The release of identifiers waits for it."""
        done = request.receipt
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """
                insert into product_purges (account_id, product, workflow_id, verified_clean,
                                            driver, reported_rows, confirmed_by, completed_at)
                values ($1, $2, $3, $4, $5, $6, $7, $8)
                on conflict (account_id, product) do nothing
                returning completed_at
                """,
                request.account_id,
                done.product,
                request.workflow_id,
                done.verified_clean,
                done.driver.value,
                done.reported_rows,
                done.confirmed_by,
                done.completed_at,
            )
            if inserted is None:
                recorded = await conn.fetchrow(
                    "select completed_at, confirmed_by from product_purges"
                    " where account_id = $1 and product = $2",
                    request.account_id,
                    done.product,
                )
                assert recorded is not None
                return done.model_copy(update=dict(recorded))
            details: dict[str, object] = {"driver": done.driver.value, "rows": done.rows}
            if done.confirmed_by is not None:
                details["confirmed_by"] = done.confirmed_by
            await audit(
                conn,
                request.account_id,
                request.workflow_id,
                "product_purged",
                product=done.product,
                **details,
            )
        activity.logger.info("%s purge of %s recorded", done.driver.value, done.product)
        return done

    @activity.defn
    async def purge_product(self, request: PurgeProductInput) -> ProductReceipt:
        product = self._catalog.sql_product(request.product)
        if product is None:
            raise ApplicationError(
                f"no product named {request.product}", type=UNKNOWN_PRODUCT, non_retryable=True
            )
        beat = _Heartbeat(self._heartbeat_after)
        completed, hold = await self._standing(request)
        if completed:
            # A retry after success returns the recorded receipt, even if a hold came since.
            return await self._complete(request, product)
        if hold is not None:
            raise ApplicationError(
                f"{request.product} refuses to purge: {hold}",
                type=PURGE_REFUSED,
                non_retryable=True,
            )
        details = activity.info().heartbeat_details
        start = int(details[0]) if details else 0
        if start:
            # Rows written late into a table already passed would block its parent's
            # delete (foreign key): resume at the first table that still holds rows.
            left = await self._probe(product, request.account_id)
            start = next(
                (i for i, table in enumerate(product.tables[:start]) if table.table in left), start
            )
            activity.logger.info("resuming purge of %s at table %d", product.name, start)
        for _ in range(3):
            for index, table in enumerate(product.tables):
                if index >= start:
                    await self._purge_table(request, table, index, beat)
            left = await self._probe(product, request.account_id)
            if not left:
                return await self._complete(request, product)
            # Rows appeared after their table was purged (a product writing late, though the
            # account is frozen): go over the tables again.
            start = 0
        raise ApplicationError(
            f"{product.name}: rows keep appearing in {', '.join(sorted(left))}",
            type=PURGE_INCOMPLETE,
        )

    async def purge_late_rows(self, account_id: str, workflow_id: str) -> dict[str, int]:
        """Purges again every product whose purge finished but that holds rows of the account
        again (written late: a run can wait for months in PURGE_BLOCKED while products keep
        writing). Called by `release_identifiers`, which releases nothing until every product
        probes clean. Counted in `purge_progress` like any batch, so the receipt includes them.

        Returns the rows purged per product now. A product under an active legal hold is not
        touched: the error is retryable, so the release waits, identifiers held, until it is
        lifted.
        """
        finished = {
            row["product"]
            for row in await self._pool.fetch(
                "select product from product_purges where account_id = $1", account_id
            )
        }
        beat = _Heartbeat(self._heartbeat_after)
        purged: dict[str, int] = {}
        for product in self._catalog.sql:
            if product.name not in finished or not await self._probe(product, account_id):
                continue
            request = PurgeProductInput(
                account_id=account_id, workflow_id=workflow_id, product=product.name
            )
            _, hold = await self._standing(request)
            if hold is not None:
                raise ApplicationError(
                    f"{product.name} holds rows written after its purge, but refuses: {hold}",
                    type=PURGE_REFUSED,
                )
            before = await self._rows_counted(account_id, product.name)
            for _ in range(3):
                for index, table in enumerate(product.tables):
                    await self._purge_table(request, table, index, beat)
                if not (left := await self._probe(product, account_id)):
                    break
            else:
                raise ApplicationError(
                    f"{product.name}: rows keep appearing in {', '.join(sorted(left))}",
                    type=PURGE_INCOMPLETE,
                )
            purged[product.name] = await self._rows_counted(account_id, product.name) - before
            async with self._pool.acquire() as conn:
                await audit(
                    conn,
                    account_id,
                    workflow_id,
                    "late_rows_purged",
                    product=product.name,
                    rows=purged[product.name],
                )
            activity.logger.info(
                "purged %s again: %d late rows", product.name, purged[product.name]
            )
        return purged

    async def _rows_counted(self, account_id: str, product: str) -> int:
        return int(
            await self._pool.fetchval(
                "select coalesce(sum(rows), 0) from purge_progress"
                " where account_id = $1 and product = $2",
                account_id,
                product,
            )
        )

    async def _probe(self, product: Product, account_id: str) -> dict[str, int]:
        """Read-only: what of the account is still in the product's tables."""
        counts = await self._pool.fetchrow(product.probe_sql, account_id)
        assert counts is not None
        return {name: int(count) for name, count in counts.items() if count}

    async def _standing(self, request: PurgeProductInput) -> tuple[bool, str | None]:
        """Whether the product's purge already completed, and the reason of a hold on it."""
        row = await self._pool.fetchrow(
            """
            select exists (
                       select 1 from product_purges where account_id = $1 and product = $2
                   ) as completed,
                   (select reason from legal_holds
                    where account_id = $1 and product = $2 and lifted_at is null
                    order by placed_at limit 1) as hold
            """,
            request.account_id,
            request.product,
        )
        assert row is not None
        return bool(row["completed"]), row["hold"]

    async def _purge_table(
        self, request: PurgeProductInput, table: TablePurge, index: int, beat: _Heartbeat
    ) -> None:
        last: object = None  # the last key purged: the next batch starts after it
        progress = (request.product, table.table, table.method.value)
        while True:
            if last is None:
                batch = await self._pool.fetchrow(
                    table.batch_sql, request.account_id, self._batch_size, *progress
                )
            else:
                batch = await self._pool.fetchrow(
                    table.next_batch_sql, request.account_id, self._batch_size, *progress, last
                )
            assert batch is not None
            rows = int(batch["rows"])
            if rows:
                last = batch["last"]
            beat(index)
            if rows < self._batch_size:
                return

    async def _complete(self, request: PurgeProductInput, product: Product) -> ProductReceipt:
        """Records completion once (the probe found nothing left) and builds the receipt."""
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """
                insert into product_purges (account_id, product, workflow_id, verified_clean)
                values ($1, $2, $3, true)
                on conflict (account_id, product) do nothing
                returning completed_at
                """,
                request.account_id,
                product.name,
                request.workflow_id,
            )
            counts = {
                row["table_name"]: row["rows"]
                for row in await conn.fetch(
                    "select table_name, rows from purge_progress "
                    "where account_id = $1 and product = $2",
                    request.account_id,
                    product.name,
                )
            }
            receipt = ProductReceipt(
                product=product.name,
                tables=[
                    TableReceipt(
                        table=table.table,
                        method=table.method.value,
                        rows=counts.get(table.table, 0),
                    )
                    for table in product.tables
                ],
                completed_at=inserted
                or await conn.fetchval(
                    "select completed_at from product_purges"
                    " where account_id = $1 and product = $2",
                    request.account_id,
                    product.name,
                ),
                verified_clean=True,
            )
            if inserted:
                await audit(
                    conn,
                    request.account_id,
                    request.workflow_id,
                    "product_purged",
                    product=product.name,
                    rows=receipt.rows,
                )
        activity.logger.info("purged %s: %d rows", product.name, receipt.rows)
        return receipt


class _Heartbeat:
    """Heartbeats the table reached, once the attempt has run past its quiet start."""

    def __init__(self, quiet: timedelta) -> None:
        timeout = activity.info().heartbeat_timeout
        if timeout is not None:
            quiet = min(quiet, timeout / 4)
        self._from = time.monotonic() + quiet.total_seconds()

    def __call__(self, table_index: int) -> None:
        if time.monotonic() >= self._from:
            activity.heartbeat(table_index)
