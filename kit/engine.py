"""The purge of one product for one account, generic over its declaration (`KitProduct`): the
same engine purges the built-in `sql` products in the deletion service's database and a
`worker` product in the product team's own.

Exactly once in effect: each batch is deleted (or anonymised) in the same transaction that
adds its row count to `purge_progress`, so a crash at any point loses no count and repeats no
work; the heartbeat carries the table the purge had reached (the first of the tables it purges
at the same time, `KitProduct.together`), so a retry resumes there. After the tables, a
read-only probe confirms that nothing of the account is left, and `product_purges` records the
completion once. With a batch budget, each table's batches grow or shrink from the configured
size so that a transaction takes about that long (`kit.batches`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Protocol

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contract.errors import PURGE_INCOMPLETE, PURGE_REFUSED
from contract.models import ProductDriver, ProductReceipt, PurgeProductInput, TableReceipt
from kit.batches import BatchSize
from kit.declarations import (
    PROGRESS_UPSERT,
    Connection,
    CustomPurge,
    KitProduct,
    PurgeStep,
    TablePurge,
)

logger = logging.getLogger(__name__)

HEARTBEAT_AFTER = timedelta(seconds=1)
"""A purge heartbeats once it has run this long (and at most a quarter of its heartbeat
timeout). Each heartbeat is a write to Temporal's persistence: the usual account, each table
done in a batch or two, finishes sooner and sends none; its retry redoes under a second."""

PASSES = 3
"""Passes over the tables before rows that keep appearing fail the purge (retried)."""

_COUNT_CUSTOM = f"with tally as (select $2::bigint as n) {PROGRESS_UPSERT}"
"""Adds a custom batch's count $2 to the progress of account $1 (product $3, table $4, $5)."""


class Ledger(Protocol):
    """What the database around a product adds to its purge: why it may refuse to start, and
    what else the first completion records (in the same transaction)."""

    async def refusal(self, conn: Connection, product: KitProduct, account_id: str) -> str | None:
        """Why the product must not be purged now (a legal hold, live resources), or None."""
        ...

    async def completed(
        self, conn: Connection, request: PurgeProductInput, receipt: ProductReceipt
    ) -> None:
        """Called once, in the transaction that records the completion."""
        ...


class PurgeEngine:
    """Purges products in the database of `pool`, which holds their tables and the kit's
    bookkeeping (`purge_progress`, `product_purges`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ledger: Ledger,
        *,
        driver: ProductDriver = ProductDriver.SQL,
        batch_size: int = 5000,
        batch_budget: timedelta | None = None,
        heartbeat_after: timedelta = HEARTBEAT_AFTER,
    ) -> None:
        """`batch_size` rows a batch; with a `batch_budget` (under a second), only each table's
        first batch, the next ones sized to take about the budget."""
        BatchSize(batch_size, batch_budget)  # refuses a budget out of range now
        self._pool = pool
        self._ledger = ledger
        self._driver = driver
        self._batch_size = batch_size
        self._batch_budget = batch_budget
        self._heartbeat_after = heartbeat_after

    async def purge(self, product: KitProduct, request: PurgeProductInput) -> ProductReceipt:
        """The activity's body: refuses (non-retryable PurgeRefused) while the ledger says so,
        resumes from the last heartbeat, purges every table, probes, records the completion.
        A repeat after success returns the recorded receipt and changes nothing."""
        beat = Heartbeat(self._heartbeat_after)
        async with self._pool.acquire() as conn:
            if await self.completed_at(conn, request.account_id, product.name) is not None:
                return await self._complete(request, product)
            refusal = await self._ledger.refusal(conn, product, request.account_id)
        if refusal is not None:
            raise ApplicationError(
                f"{product.name} refuses to purge: {refusal}",
                type=PURGE_REFUSED,
                non_retryable=True,
            )
        details = activity.info().heartbeat_details
        # A table's index (an older worker's heartbeat may name any table of a group).
        start = product.stage_start(int(details[0])) if details else 0
        if start:
            # Rows written late into a table already passed would block its parent's
            # delete (foreign key): resume at the first table that still holds rows.
            left = await self.probe(product, request.account_id)
            passed = product.steps[:start]
            start = next(
                (product.stage_start(i) for i, t in enumerate(passed) if t.table in left), start
            )
            activity.logger.info("resuming purge of %s at table %d", product.name, start)
        await self.purge_tables(product, request, beat, start=start)
        return await self._complete(request, product)

    async def purge_late_rows(self, product: KitProduct, request: PurgeProductInput) -> int:
        """Before identifiers are released: purges again what the product wrote after its
        completed purge (a run can wait for months in PURGE_BLOCKED while products write),
        counted like any batch; returns the rows purged now (0 for a purge never completed).
        While the ledger refuses (a hold, a live resource) the error is retryable: the release
        waits, identifiers held."""
        async with self._pool.acquire() as conn:
            if await self.completed_at(conn, request.account_id, product.name) is None:
                return 0
        if not await self.probe(product, request.account_id):
            return 0
        async with self._pool.acquire() as conn:
            refusal = await self._ledger.refusal(conn, product, request.account_id)
        if refusal is not None:
            raise ApplicationError(
                f"{product.name} holds rows written after its purge, but refuses: {refusal}",
                type=PURGE_REFUSED,
            )
        before = await self.rows_counted(request.account_id, product.name)
        await self.purge_tables(product, request, Heartbeat(self._heartbeat_after))
        purged = await self.rows_counted(request.account_id, product.name) - before
        activity.logger.info("purged %s again: %d late rows", product.name, purged)
        return purged

    async def receipt(self, request: PurgeProductInput, product: KitProduct) -> ProductReceipt:
        """The receipt of a completed purge, with every row counted so far."""
        return await self._complete(request, product)

    async def purge_tables(
        self,
        product: KitProduct,
        request: PurgeProductInput,
        beat: Heartbeat,
        *,
        start: int = 0,
    ) -> None:
        """Every table from `start` (the first of a stage), then the probe; again from the
        first table while rows appear after their table was purged (a product writing late),
        at most PASSES times. The tables of a stage go at the same time, each heartbeating the
        stage's first: a retry redoes the whole stage, whose finished tables cost a batch."""
        for _ in range(PASSES):
            for stage in product.stages:
                if stage[0] < start:
                    continue
                steps = [product.steps[index] for index in stage]
                await self._purge_stage(request, steps, stage[0], beat)
            left = await self.probe(product, request.account_id)
            if not left:
                return
            start = 0
        raise ApplicationError(
            f"{product.name}: rows keep appearing in {', '.join(sorted(left))}",
            type=PURGE_INCOMPLETE,
        )

    async def probe(self, product: KitProduct, account_id: str) -> dict[str, int]:
        """Read-only: what of the account is still in the product's tables, by table. The
        declared tables are counted by one statement (one snapshot); custom steps add theirs
        in a read-only transaction with it."""
        async with self._pool.acquire() as conn:
            if not product.custom:
                return await self._count_left(conn, product, account_id)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                left = await self._count_left(conn, product, account_id)
                for step in product.custom:
                    if count := await step.remaining(conn, account_id):
                        left[step.table] = count
                return left

    @staticmethod
    async def _count_left(conn: Connection, product: KitProduct, account_id: str) -> dict[str, int]:
        if not product.tables:
            return {}
        counts = await conn.fetchrow(product.probe_sql, account_id)
        assert counts is not None
        return {name: int(count) for name, count in counts.items() if count}

    async def rows_counted(self, account_id: str, product: str) -> int:
        """The rows the product's purges of the account have counted so far."""
        return int(
            await self._pool.fetchval(
                "select coalesce(sum(rows), 0) from purge_progress"
                " where account_id = $1 and product = $2",
                account_id,
                product,
            )
        )

    @staticmethod
    async def completed_at(conn: Connection, account_id: str, product: str) -> object:
        """When the product's purge of the account was recorded complete; None if not yet."""
        return await conn.fetchval(
            "select completed_at from product_purges where account_id = $1 and product = $2",
            account_id,
            product,
        )

    async def _purge_stage(
        self, request: PurgeProductInput, steps: list[PurgeStep], index: int, beat: Heartbeat
    ) -> None:
        """The steps at the same time, each on its own connection; the first failure is the
        stage's, once the others have stopped (a batch in flight commits whole or not)."""
        if len(steps) == 1:
            await self._purge_step(request, steps[0], index, beat)
            return
        tasks = [asyncio.ensure_future(self._purge_step(request, s, index, beat)) for s in steps]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _purge_step(
        self, request: PurgeProductInput, step: PurgeStep, index: int, beat: Heartbeat
    ) -> None:
        progress = (request.product, step.table, step.method.value)
        size = BatchSize(self._batch_size, self._batch_budget)
        if isinstance(step, CustomPurge):
            while True:
                limit = size.rows
                started = time.monotonic()
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await step.batch(conn, request.account_id, limit)
                    if rows:
                        await conn.execute(_COUNT_CUSTOM, request.account_id, rows, *progress)
                size.took(rows, time.monotonic() - started)
                beat(index)
                if rows < limit:
                    return
        await self._purge_table(request, step, index, beat, progress, size)

    async def _purge_table(
        self,
        request: PurgeProductInput,
        table: TablePurge,
        index: int,
        beat: Heartbeat,
        progress: tuple[str, str, str],
        size: BatchSize,
    ) -> None:
        # One connection for the table's batches. Each batch is two statements: its bound
        # (read only), then the purge of the range with its count (one statement, so one
        # transaction). Both come from the connection's statement cache: prepared once per
        # connection for every purge it serves (`conn.prepare` would parse them each time).
        first = (table.bound_sql(after_last=False), table.range_sql(after_last=False))
        following = (table.bound_sql(after_last=True), table.range_sql(after_last=True))
        async with self._pool.acquire() as conn:
            # (the last key purged,), after which the next batch starts; () before the first.
            last: tuple[object, ...] = ()
            while True:
                limit = size.rows
                started = time.monotonic()
                bound_sql, range_sql = following if last else first
                upper = await conn.fetchval(bound_sql, request.account_id, limit, *last)
                rows = (
                    0
                    if upper is None
                    else await conn.fetchval(range_sql, request.account_id, upper, *progress, *last)
                )
                size.took(rows, time.monotonic() - started)
                if upper is not None:
                    last = (upper,)
                beat(index)
                if rows < limit:
                    return

    async def _complete(self, request: PurgeProductInput, product: KitProduct) -> ProductReceipt:
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
                        table=step.table, method=step.method.value, rows=counts.get(step.table, 0)
                    )
                    for step in product.steps
                ],
                completed_at=inserted
                or await self.completed_at(conn, request.account_id, product.name),
                verified_clean=True,
                driver=self._driver,
            )
            if inserted:
                await self._ledger.completed(conn, request, receipt)
        if inserted:  # once: a repeat, or a receipt asked again, is no new purge
            activity.logger.info("purged %s: %d rows", product.name, receipt.rows)
        return receipt


class Heartbeat:
    """Heartbeats the table reached, once the attempt has run past its quiet start."""

    def __init__(self, quiet: timedelta) -> None:
        timeout = activity.info().heartbeat_timeout
        if timeout is not None:
            quiet = min(quiet, timeout / 4)
        self._from = time.monotonic() + quiet.total_seconds()

    def __call__(self, table_index: int) -> None:
        if time.monotonic() >= self._from:
            activity.heartbeat(table_index)
