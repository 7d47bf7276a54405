"""How the purge sizes its batches (a time budget per transaction) and which tables it purges
at the same time (`KitProduct.together`), with the guarantees of `test_purge` kept: every row
counted once, children before the rows they reference, a retry resuming where it should."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from temporalio.testing import ActivityEnvironment

from activities.purge import PurgeActivities
from contract.models import ProductReceipt, PurgeProductInput
from contract.names import workflow_id_for
from kit.batches import GROWTH, MAX_BATCH_ROWS, BatchSize
from kit.declarations import KitProduct, TablePurge
from registry.catalog import Catalog
from registry.products import PRODUCTS_BY_NAME
from tests.test_purge import _account, _count, _env, _progress, _rows, seed_every_table


async def _purge(
    pool: asyncpg.Pool,
    account_id: str,
    product: str,
    *,
    batch_size: int,
    budget: timedelta | None,
    env: ActivityEnvironment | None = None,
) -> ProductReceipt:
    request = PurgeProductInput(
        account_id=account_id, workflow_id=workflow_id_for(account_id), product=product
    )
    activities = PurgeActivities(
        pool, Catalog(), batch_size=batch_size, batch_budget=budget, heartbeat_after=timedelta(0)
    )
    return await (env or _env()).run(activities.purge_product, request)


async def _batches(pool: asyncpg.Pool, account_id: str, table: str) -> int:
    count: int = await pool.fetchval(
        "select batches from purge_progress where account_id = $1 and table_name = $2",
        account_id,
        table,
    )
    return count


# --- the batch size ------------------------------------------------------------------------------


def test_without_a_budget_every_batch_has_the_configured_size() -> None:
    size = BatchSize(50)
    size.took(50, 0.000_001)
    size.took(50, 30.0)
    assert size.rows == 50


def test_a_budget_grows_fast_batches_at_most_fourfold_and_shrinks_slow_ones_to_fit() -> None:
    size = BatchSize(100, timedelta(seconds=0.25))
    size.took(100, 0.001)  # 0.25 s would fit 25,000 rows
    assert size.rows == 100 * GROWTH
    size.took(400, 0.004)  # fits 25,000
    assert size.rows == 1600
    size.took(1600, 0.8)  # 2 rows a ms: 0.25 s fits 500
    assert size.rows == 500
    size.took(120, 0.001)  # the table's last, short batch: says nothing
    assert size.rows == 500
    size.took(120, 2.0)  # short but slow (a lock waited for): shrinks anyway
    assert size.rows == 15
    for _ in range(20):
        size.took(size.rows, 0.000_001)
    assert size.rows == MAX_BATCH_ROWS


def test_a_budget_must_stay_under_the_lock_limit_of_a_second() -> None:
    for budget in (timedelta(0), timedelta(seconds=1), timedelta(seconds=5)):
        with pytest.raises(ValueError, match="budget"):
            BatchSize(10, budget)


async def test_fast_batches_grow_so_a_table_goes_in_fewer_transactions(pool: asyncpg.Pool) -> None:
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=40))["object_storage"]
    assert seeded["storage_objects"] == 400
    heartbeats: list[int] = []

    receipt = await _purge(
        pool,
        account_id,
        "object_storage",
        batch_size=2,
        budget=timedelta(seconds=0.5),
        env=_env(heartbeats=heartbeats),
    )

    assert _rows(receipt) == seeded
    # 2, 8, 32, 128 and the last 230 (fixed batches of 2 would take 200 transactions).
    assert await _batches(pool, account_id, "storage_objects") == 5
    assert heartbeats.count(0) == 5
    assert await _count(pool, "storage_objects", account_id) == 0


async def test_slow_batches_shrink_to_the_budget(pool: asyncpg.Pool) -> None:
    """Each deleted row costs 4 ms (a trigger): the first batch of 100 takes 0.4 s, so the
    next ones take 25 rows, about the budget of 0.1 s, and all are counted exactly once."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=200))["dns"]
    async with pool.acquire() as conn:
        await conn.execute(
            """
            create function slow_delete() returns trigger language plpgsql as $$
            begin
                perform pg_sleep(0.004);
                return old;
            end;
            $$;
            create trigger slow_delete before delete on dns_records
                for each row execute function slow_delete();
            """
        )

    receipt = await _purge(pool, account_id, "dns", batch_size=100, budget=timedelta(seconds=0.1))

    assert _rows(receipt) == seeded == {"dns_records": 200, "dns_zones": 200}
    batches = await _batches(pool, account_id, "dns_records")
    assert 4 + 1 <= batches <= 4 + 3, "100, then about 25 at a time (fixed: 2 batches)"
    assert await _batches(pool, account_id, "dns_zones") == 2, "another table starts at 100"


# --- tables purged at the same time --------------------------------------------------------------


def test_stages_group_the_tables_declared_together_and_keep_the_rest_in_order() -> None:
    sign_in = PRODUCTS_BY_NAME["sign_in"]
    assert [t.table for t in sign_in.tables] == [
        "sessions",
        "api_keys",
        "verification_attempts",
        "verification_challenges",
    ]
    assert sign_in.stages == ((0, 1, 2), (3,))
    assert [sign_in.stage_start(i) for i in range(4)] == [0, 0, 0, 3]
    assert PRODUCTS_BY_NAME["compute"].stages == ((0,), (1,), (2,))


def test_together_names_neighbouring_tables_of_the_product() -> None:
    tables = (TablePurge("a", "id"), TablePurge("b", "id"), TablePurge("c", "id"))
    assert KitProduct("p", "P", tables, together=(("b", "c"),)).stages == ((0,), (1, 2))
    for together, why in (
        ((("a", "c"),), "next to each other"),
        ((("a", "x"),), "two or more"),
        ((("a",),), "two or more"),
        ((("a", "b"), ("b", "c")), "two groups"),
    ):
        with pytest.raises(ValueError, match=why):
            KitProduct("p", "P", tables, together=together)


async def test_tables_declared_together_are_purged_at_the_same_time(pool: asyncpg.Pool) -> None:
    """Sessions are locked by another transaction: the purge waits on them, and meanwhile
    purges the API keys and verification attempts of the same group. The challenges (which
    the attempts reference) wait for the whole group."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=6))["sign_in"]
    heartbeats: list[int] = []
    async with pool.acquire() as blocker:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("lock table sessions in exclusive mode")
        purge = asyncio.create_task(
            _purge(
                pool,
                account_id,
                "sign_in",
                batch_size=4,
                budget=None,
                env=_env(heartbeats=heartbeats),
            )
        )
        for _ in range(200):
            if not await _count(pool, "api_keys", account_id):
                if not await _count(pool, "verification_attempts", account_id):
                    break
            await asyncio.sleep(0.02)
        assert await _count(pool, "api_keys", account_id) == 0
        assert await _count(pool, "verification_attempts", account_id) == 0
        assert await _count(pool, "sessions", account_id) == 6, "waits for the lock"
        assert await _count(pool, "verification_challenges", account_id) == 6
        assert not purge.done()
        await locked.rollback()
    receipt = await purge

    assert _rows(receipt) == seeded
    assert set(heartbeats) == {0, 3}, "a group heartbeats its first table"
    assert heartbeats[-1] == 3


async def test_a_retry_resumes_a_group_whole_even_from_an_older_workers_heartbeat(
    pool: asyncpg.Pool,
) -> None:
    """An older worker purged the tables one by one and heartbeat table 2 (verification
    attempts), in the middle of what is now a group: the retry starts at the group's first
    table (its tables go together, so any of them may be unfinished) and counts each row once."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=5))["sign_in"]
    # What that worker had done: sessions and API keys purged and counted.
    for table in ("sessions", "api_keys"):
        await pool.execute(f"delete from {table} where account_id = $1", account_id)
        await pool.execute(
            "insert into purge_progress (account_id, product, table_name, method, rows, batches)"
            " values ($1, 'sign_in', $2, 'delete', 5, 1)",
            account_id,
            table,
        )
    heartbeats: list[int] = []

    receipt = await _purge(
        pool,
        account_id,
        "sign_in",
        batch_size=4,
        budget=None,
        env=_env([2], heartbeats=heartbeats),
    )

    assert heartbeats[0] == 0 and set(heartbeats) == {0, 3}
    assert _rows(receipt) == seeded
    assert await _progress(pool, account_id, "sign_in") == seeded
    assert await _batches(pool, account_id, "sessions") == 1, "nothing left: no batch counted"
