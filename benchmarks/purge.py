"""Purge rate: one account with rows in six products, purged by the real saga (batched,
heartbeating, each batch committed with its count), against one plain
`DELETE ... WHERE account_id = $1` per table over an identical account in the same run.

The tables hold many other accounts' rows (`benchmarks.background`: 19 times the account's
rows in each big table, over many accounts), so that the account is at most 5 % of every
table, as in production: the plain DELETE goes through the account index (its plan is
checked with EXPLAIN; a sequential scan of a table holding the account's rows fails the run),
and so do the saga's batches. Every table is `vacuum analyze`d before each measurement.

The saga's figure is its purge stage as Temporal saw it: from the first purge activity
scheduled to the last one completed (history event times). Meanwhile a sampler reads
`pg_stat_activity` every 10 ms and keeps the age of the oldest open transaction: no batch may
hold its locks for more than a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from temporalio.api.enums.v1 import EventType

from benchmarks.background import seed_background
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
BACKGROUND_FACTOR = 19
"""Other accounts' rows per row of the purged account, in each big table: a share of 5 %."""
MAX_SHARE = 0.05
SCAN_PAGES = 50
"""A table of more pages must be deleted from through an index (a smaller one may be read
whole: the planner's choice, and as cheap)."""


@dataclass(frozen=True)
class Size:
    rows_per_product: int
    runs: int
    background_accounts: int

    @property
    def background_rows_per_account(self) -> int:
        return -(-BACKGROUND_FACTOR * self.rows_per_product // self.background_accounts)


SIZES = {
    "tiny": Size(rows_per_product=200, runs=1, background_accounts=20),
    "full": Size(rows_per_product=50_000, runs=3, background_accounts=1000),
}


@dataclass(frozen=True)
class Measured:
    rows: int
    seconds: float
    longest_transaction_s: float
    share: float
    """The purged account's largest share of a table it had rows in, before the purge."""
    longest_query: str = ""
    """What the longest transaction was running when last sampled."""
    waits_s: tuple[float, ...] = ()
    """The saga's purge activities: each one's time from scheduled to started."""
    runs_s: tuple[float, ...] = ()
    """The same: each one's time from started to completed."""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


async def run(stack: Stack, size: Size) -> Report:
    report = Report(
        "purge",
        columns=["run", "method", "rows", "seconds", "rows/s", "longest txn s", "share"],
        target=f"ratio >= {TARGET_RATIO}, no transaction over {LOCK_LIMIT_S:.0f} s",
    )
    started = time.perf_counter()
    await seed_background(
        stack.pool,
        accounts=size.background_accounts,
        rows_per_account=size.background_rows_per_account,
    )
    seeding_s = time.perf_counter() - started
    saga: list[Measured] = []
    plain: list[Measured] = []
    plans: dict[str, str] = {}
    for index in range(size.runs):
        plain.append(await _plain_delete(stack, size, plans))
        saga.append(await _saga_purge(stack, size))
        for name, m in (("plain DELETE", plain[-1]), ("saga purge", saga[-1])):
            report.rows.append(
                [index + 1, name, m.rows, m.seconds, m.rows_per_s, m.longest_transaction_s, m.share]
            )
    saga_rate = median([m.rows_per_s for m in saga])
    plain_rate = median([m.rows_per_s for m in plain])
    longest = max(m.longest_transaction_s for m in saga)
    slowest = max(saga, key=lambda m: m.longest_transaction_s)
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
        "account_share_max": round(max(m.share for m in plain + saga), 4),
        "background_rows_per_table": size.background_accounts * size.background_rows_per_account,
        "plain_delete_plans": plans,
    }
    report.notes += [
        f"medians of {size.runs} run(s); longest transaction (client backends) sampled every"
        f" {SAMPLE_INTERVAL_S * 1000:.0f} ms from pg_stat_activity",
        f"{size.rows_per_product:,} rows of the account per product, among"
        f" {size.background_accounts:,} other accounts' {size.background_rows_per_account:,}"
        f" rows each per big table (seeded in {seeding_s:.0f} s): share <= {MAX_SHARE:.0%}",
        f"the saga's longest transaction ({slowest.longest_transaction_s:.3f} s) ran:"
        f" {slowest.longest_query}",
        "the saga's purge activities by run (scheduled to started; started to completed,"
        " median and longest): "
        + "; ".join(
            f"{max(m.waits_s) * 1000:.0f} ms at most;"
            f" {median(list(m.runs_s)) * 1000:.0f} and {max(m.runs_s) * 1000:.0f} ms"
            for m in saga
        ),
        "plain DELETE plans (tables by innermost scan; the full plans in the JSON line): "
        + ", ".join(f"{node} x{n}" for node, n in Counter(map(_scan_kind, plans.values())).items()),
    ]
    return report


class LongestTransaction:
    """Samples the age of the oldest open transaction in the database, other than its own,
    and the statement it was running (`query`: its first words)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.longest = 0.0
        self.query = ""
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
                oldest = await conn.fetchrow(
                    """
                    select extract(epoch from clock_timestamp() - xact_start) as age, query
                    from pg_stat_activity
                    where datname = current_database() and pid <> pg_backend_pid()
                      and xact_start is not null and backend_type = 'client backend'
                    order by xact_start limit 1
                    """
                )
                if oldest is not None and float(oldest["age"]) > self.longest:
                    self.longest = float(oldest["age"])
                    self.query = " ".join(str(oldest["query"]).split())[:70]
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


async def _seeded(stack: Stack, size: Size) -> tuple[str, float]:
    """A fresh account, its tables vacuumed and analysed; its largest share of a table."""
    account = await seed_account(stack.pool, rows_per_product=size.rows_per_product)
    share = 0.0
    async with stack.pool.acquire() as conn:
        for table in _resource_tables():
            # No dead rows of the previous measurement, and fresh statistics: the state
            # autovacuum keeps a real account's years-old data in.
            await conn.execute(f"vacuum analyze {table}")
            counts = await conn.fetchrow(
                f"select count(*) filter (where account_id = $1), count(*) from {table}",
                account.account_id,
            )
            assert counts is not None
            mine, rows = int(counts[0]), int(counts[1])
            if mine:
                share = max(share, mine / rows)
    if share > MAX_SHARE:
        raise RuntimeError(f"the account is {share:.1%} of a table: more than {MAX_SHARE:.0%}")
    return account.account_id, share


async def _plan_node(conn: asyncpg.pool.PoolConnectionProxy, table: str, account_id: str) -> str:
    """How the plain DELETE finds the account's rows of `table`: its plan's scan nodes."""
    plan = await conn.fetch(f"explain delete from {table} where account_id = $1", account_id)
    lines = [str(row[0]).strip().removeprefix("->  ") for row in plan]
    return " > ".join(line.split("  (")[0] for line in lines if " Scan " in f" {line} ")


def _scan_kind(plan: str) -> str:
    """`Bitmap Index Scan` of `Bitmap Heap Scan on t > Bitmap Index Scan on t_account`."""
    return plan.rsplit(" > ", 1)[-1].split(" on ", 1)[0]


async def _plain_delete(stack: Stack, size: Size, plans: dict[str, str]) -> Measured:
    account_id, share = await _seeded(stack, size)
    rows = 0
    async with stack.pool.acquire() as conn:
        for table in _resource_tables():
            node = await _plan_node(conn, table, account_id)
            pages = await conn.fetchval(
                "select relpages from pg_class where oid = $1::regclass", table
            )
            if pages > SCAN_PAGES and ("Index" not in node or "Seq Scan" in node):
                raise RuntimeError(f"the plain DELETE of {table} does not use an index: {node}")
            plans[table] = node
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
    return Measured(rows, seconds, sampler.longest, share, sampler.query)


async def _saga_purge(stack: Stack, size: Size) -> Measured:
    account_id, share = await _seeded(stack, size)
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
    scheduled: dict[int, datetime] = {}
    started: dict[int, datetime] = {}
    completed: dict[int, datetime] = {}
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == "purge_product":
                scheduled[event.event_id] = at
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            if (
                key := event.activity_task_started_event_attributes.scheduled_event_id
            ) in scheduled:
                started[key] = at
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            if (
                key := event.activity_task_completed_event_attributes.scheduled_event_id
            ) in scheduled:
                completed[key] = at
    seconds = (max(completed.values()) - min(scheduled.values())).total_seconds()
    rows = sum(product.rows for product in receipt.products)
    waits = tuple((started[k] - scheduled[k]).total_seconds() for k in sorted(started))
    runs = tuple((completed[k] - started[k]).total_seconds() for k in sorted(started))
    return Measured(rows, seconds, sampler.longest, share, sampler.query, waits, runs)
