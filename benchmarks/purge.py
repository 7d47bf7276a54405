"""Purge rate: one account with about a million rows across six products, purged by the real
saga (batched, heartbeating, each batch committed with its count), against one plain
`DELETE ... WHERE account_id = $1` per table over an identical account in the same run.

The saga's figure is its purge stage as Temporal saw it: from the first purge activity
scheduled to the last one completed (history event times). Meanwhile a sampler reads
`pg_stat_activity` every 10 ms and keeps the age of the oldest open transaction: no batch may
hold its locks for more than a second.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from temporalio.api.enums.v1 import EventType

from benchmarks.harness import Report, median, saga_handle, saga_worker, signalling
from benchmarks.seed import RESOURCE_PRODUCTS, seed_account
from benchmarks.stack import Stack
from contract.names import workflow_id_for
from contract.stages import Stage
from registry.products import PRODUCTS, PurgeMethod
from starter.client import DeletionClient

TARGET_RATIO = 0.8
LOCK_LIMIT_S = 1.0
SAMPLE_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Size:
    rows_per_product: int
    runs: int


SIZES = {"tiny": Size(rows_per_product=200, runs=1), "full": Size(rows_per_product=170_000, runs=3)}


@dataclass(frozen=True)
class Measured:
    rows: int
    seconds: float
    longest_transaction_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


async def run(stack: Stack, size: Size) -> Report:
    report = Report(
        "purge",
        columns=["run", "method", "rows", "seconds", "rows/s", "longest txn s"],
        target=f"ratio >= {TARGET_RATIO}, no transaction over {LOCK_LIMIT_S:.0f} s",
    )
    saga: list[Measured] = []
    plain: list[Measured] = []
    for index in range(size.runs):
        plain.append(await _plain_delete(stack, size))
        saga.append(await _saga_purge(stack, size))
        for name, m in (("plain DELETE", plain[-1]), ("saga purge", saga[-1])):
            report.rows.append(
                [index + 1, name, m.rows, m.seconds, m.rows_per_s, m.longest_transaction_s]
            )
    saga_rate = median([m.rows_per_s for m in saga])
    plain_rate = median([m.rows_per_s for m in plain])
    longest = max(m.longest_transaction_s for m in saga)
    report.ratio = saga_rate / plain_rate
    report.met = report.ratio >= TARGET_RATIO and longest <= LOCK_LIMIT_S
    report.figures = {
        "rows": saga[0].rows,
        "runs": size.runs,
        "saga_rows_per_s": round(saga_rate),
        "plain_rows_per_s": round(plain_rate),
        "saga_longest_transaction_s": round(longest, 3),
        "plain_longest_transaction_s": round(max(m.longest_transaction_s for m in plain), 3),
        "batch_size": stack.settings.purge_batch_size,
    }
    report.notes.append(
        f"medians of {size.runs} run(s); longest transaction sampled every"
        f" {SAMPLE_INTERVAL_S * 1000:.0f} ms from pg_stat_activity"
    )
    return report


class LongestTransaction:
    """Samples the age of the oldest open transaction in the database, other than its own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LongestTransaction:
        conn = await asyncpg.connect(self._dsn)
        self._task = asyncio.create_task(self._sample(conn))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def _sample(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                age = await conn.fetchval(
                    """
                    select coalesce(max(extract(epoch from clock_timestamp() - xact_start)), 0)
                    from pg_stat_activity
                    where datname = current_database() and pid <> pg_backend_pid()
                      and xact_start is not null
                    """
                )
                self.longest = max(self.longest, float(age))
                await asyncio.sleep(SAMPLE_INTERVAL_S)
        finally:
            await conn.close()


def _resource_tables() -> list[str]:
    """The tables of the seeded products, children before parents (the registry's order)."""
    return [
        table.table
        for product in PRODUCTS
        if product.name in RESOURCE_PRODUCTS
        for table in product.tables
        if table.method is PurgeMethod.DELETE
    ]


async def _seeded(stack: Stack, size: Size) -> str:
    account = await seed_account(stack.pool, rows_per_product=size.rows_per_product)
    async with stack.pool.acquire() as conn:
        for table in _resource_tables():
            # No dead rows of the previous measurement, and fresh statistics: the state
            # autovacuum keeps a real account's years-old data in.
            await conn.execute(f"vacuum analyze {table}")
    return account.account_id


async def _plain_delete(stack: Stack, size: Size) -> Measured:
    account_id = await _seeded(stack, size)
    rows = 0
    assert stack.settings.database_url is not None
    async with LongestTransaction(stack.settings.database_url) as sampler:
        async with stack.pool.acquire() as conn:
            started = time.perf_counter()
            for table in _resource_tables():
                # Table names come from the registry's constant declarations.
                status = await conn.execute(
                    f"delete from {table} where account_id = $1", account_id
                )
                rows += int(status.rsplit(" ", 1)[-1])
            seconds = time.perf_counter() - started
    return Measured(rows, seconds, sampler.longest)


async def _saga_purge(stack: Stack, size: Size) -> Measured:
    account_id = await _seeded(stack, size)
    deletions = DeletionClient(stack.client, stack.pool, stack.settings.temporal_task_queue)

    relay = signalling(stack, workflow_id_for)
    assert stack.settings.database_url is not None
    async with (
        saga_worker(stack, relay),
        LongestTransaction(stack.settings.database_url) as sampler,
    ):
        await deletions.start(account_id, requested_by="benchmark")
        handle = saga_handle(stack, account_id)
        receipt = await handle.result()
    if receipt.outcome is not Stage.DELETED:
        raise RuntimeError(f"the deletion ended {receipt.outcome}")
    scheduled: list[datetime] = []
    completed: list[datetime] = []
    purge_events: set[int] = set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == "purge_product":
                purge_events.add(event.event_id)
                scheduled.append(event.event_time.ToDatetime())
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            if event.activity_task_completed_event_attributes.scheduled_event_id in purge_events:
                completed.append(event.event_time.ToDatetime())
    seconds = (max(completed) - min(scheduled)).total_seconds()
    return Measured(sum(product.rows for product in receipt.products), seconds, sampler.longest)
