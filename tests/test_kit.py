"""The product kit against a product's own database (an empty PostgreSQL database, not this
service's): the example product `archive`'s schema, its live-resource check, and its purge,
which refuses while resources are live, counts each row once across crashes, resumes from its
heartbeat, and does not call a product clean while its probe finds rows.

Activities run in `ActivityEnvironment` (heartbeats observed, heartbeat details given as a
retry would get them, cancellation standing in for a crashed worker).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from contract.errors import PURGE_INCOMPLETE, PURGE_REFUSED, UNKNOWN_PRODUCT
from contract.models import (
    LiveResourcesInput,
    ProductDriver,
    ProductReceipt,
    PurgeProductInput,
    TaskCategory,
)
from kit import CustomPurge, KitProduct, ProductActivities, TablePurge, ensure_schema
from kit.archive import ARCHIVE, SCHEMA, ArchiveData, seed_archive
from kit.archive.seed import TABLES
from kit.declarations import Connection
from tests.support import new_database


@pytest.fixture
async def archive_db(postgres_admin_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """The archive team's database: empty, then the archive's schema and the kit's tables."""
    async with new_database(postgres_admin_dsn, f"archive_{uuid.uuid4().hex[:12]}") as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=6)
        await ensure_schema(pool, *SCHEMA)
        yield pool
        await pool.close()


def _env(
    heartbeat_details: Sequence[Any] = (), beats: list[int] | None = None
) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=list(heartbeat_details))
    if beats is not None:
        env.on_heartbeat = lambda *details: beats.append(details[0])
    return env


def _account() -> str:
    return f"acct-{uuid.uuid4().hex[:12]}"


async def _purge(
    pool: asyncpg.Pool,
    account_id: str,
    *,
    product: KitProduct = ARCHIVE,
    batch_size: int = 5000,
    env: ActivityEnvironment | None = None,
) -> ProductReceipt:
    # Heartbeats after every batch: the tests crash it at heartbeats.
    activities = ProductActivities(
        pool, product, batch_size=batch_size, heartbeat_after=timedelta(0)
    )
    request = PurgeProductInput(
        account_id=account_id, workflow_id=f"account-deletion-{account_id}", product=product.name
    )
    return await (env or _env()).run(activities.purge_product, request)


async def _left(pool: asyncpg.Pool, account_id: str) -> dict[str, int]:
    return {
        table: await pool.fetchval(
            f"select count(*) from {table} where account_id = $1", account_id
        )
        for table in TABLES
    }


def _rows(receipt: ProductReceipt) -> dict[str, int]:
    return {table.table: table.rows for table in receipt.tables}


async def test_the_schema_is_created_once_by_workers_starting_together(
    archive_db: asyncpg.Pool,
) -> None:
    await asyncio.gather(*(ensure_schema(archive_db, *SCHEMA) for _ in range(4)))
    tables = {
        row["tablename"]
        for row in await archive_db.fetch(
            "select tablename from pg_tables where schemaname = current_schema()"
        )
    }
    assert tables == {*TABLES, "purge_progress", "product_purges"}
    references = await archive_db.fetchval(
        "select count(*) from pg_constraint where contype = 'f' and confrelid::regclass::text"
        " not like 'archive_%'"
    )
    assert references == 0, "the archive's tables reference nothing outside its own schema"


async def test_live_vaults_and_retrievals_are_pending_tasks_of_the_product(
    archive_db: asyncpg.Pool,
) -> None:
    busy, quiet = _account(), _account()
    await seed_archive(archive_db, busy, ArchiveData(live=True))
    await seed_archive(archive_db, quiet, ArchiveData())
    activities = ProductActivities(archive_db, ARCHIVE)

    async def check(account_id: str) -> list[Any]:
        request = LiveResourcesInput(account_id=account_id, workflow_id="wf", product="archive")
        return await ActivityEnvironment().run(activities.find_live_resources, request)

    tasks = await check(busy)

    assert [t.item for t in tasks] == [
        f"Archive Storage: archive vault vault-{busy}-photos (photos, eu-west-1)",
        f"Archive Storage: archive vault vault-{busy}-records (records, us-east-1)",
        f"Archive Storage: archive retrieval job-{busy}-restore (photos-2024.tar.zst)",
    ]
    assert {t.category for t in tasks} == {TaskCategory.CLOUD_PRODUCT}
    assert {t.product for t in tasks} == {"archive"}
    assert "is still locked" in tasks[1].message and "in_progress" in tasks[2].message
    assert all(t.resolution.strip() for t in tasks)
    assert await check(quiet) == [], "deleted vaults and finished retrievals do not block"


async def test_the_purge_refuses_while_resources_are_live_and_names_them(
    archive_db: asyncpg.Pool,
) -> None:
    """The workflow's check is skipped while the product's worker is down: the purge checks."""
    account_id = _account()
    seeded = await seed_archive(archive_db, account_id, ArchiveData(live=True))

    with pytest.raises(ApplicationError) as refused:
        await _purge(archive_db, account_id)

    assert refused.value.type == PURGE_REFUSED and refused.value.non_retryable
    assert f"vault-{account_id}-photos" in refused.value.message
    assert f"job-{account_id}-restore" in refused.value.message
    assert await _left(archive_db, account_id) == seeded, "nothing may go while refusing"
    assert await archive_db.fetchval("select count(*) from purge_progress") == 0

    await archive_db.execute(
        "update archive_vaults set state = 'deleted' where account_id = $1", account_id
    )
    await archive_db.execute(
        "update archive_retrieval_jobs set state = 'succeeded' where account_id = $1", account_id
    )
    receipt = await _purge(archive_db, account_id)
    assert _rows(receipt) == seeded


async def test_the_purge_removes_exactly_the_accounts_rows_once(archive_db: asyncpg.Pool) -> None:
    account_id, other = _account(), _account()
    seeded = await seed_archive(archive_db, account_id, ArchiveData(objects=30, log_lines=12))
    others = await seed_archive(archive_db, other, ArchiveData())

    receipt = await _purge(archive_db, account_id, batch_size=7)

    assert receipt.driver is ProductDriver.WORKER and receipt.verified_clean
    assert [t.table for t in receipt.tables] == list(TABLES), "the custom step, then the tables"
    assert _rows(receipt) == seeded and all(seeded.values())
    assert set((await _left(archive_db, account_id)).values()) == {0}
    assert await _left(archive_db, other) == others
    progress = await archive_db.fetch("select * from purge_progress order by table_name")

    again = await _purge(archive_db, account_id, batch_size=7)

    assert again == receipt
    assert await archive_db.fetch("select * from purge_progress order by table_name") == progress
    assert await archive_db.fetchval("select count(*) from product_purges") == 1


async def test_counts_stay_exact_across_crashes_and_each_retry_resumes(
    archive_db: asyncpg.Pool,
) -> None:
    """The worker dies after every third committed batch; each retry starts from the last
    heartbeat. What is counted always equals what is gone, and no table is started again."""
    account_id = _account()
    seeded = await seed_archive(archive_db, account_id, ArchiveData(objects=40, log_lines=20))
    total = sum(seeded.values())
    details: list[int] = []
    attempts = 0
    while True:
        attempts += 1
        env = _env(details[-1:])
        beats: list[int] = []

        def die_after_three_batches(
            index: int, env: ActivityEnvironment = env, beats: list[int] = beats
        ) -> None:
            details.append(index)
            beats.append(index)
            if len(beats) == 3:
                env.cancel()

        env.on_heartbeat = die_after_three_batches
        try:
            receipt = await _purge(archive_db, account_id, batch_size=4, env=env)
        except asyncio.CancelledError:
            counted = await archive_db.fetchval("select coalesce(sum(rows), 0) from purge_progress")
            assert counted + sum((await _left(archive_db, account_id)).values()) == total
            if len(details) > 3:
                assert beats[0] == details[-4], "a retry resumes at the table it had reached"
            assert attempts < 60
            continue
        break

    assert attempts > 5, "the purge was meant to crash several times"
    assert _rows(receipt) == seeded
    batches = await archive_db.fetch("select table_name, batches from purge_progress")
    expected = {table: -(-rows // 4) for table, rows in seeded.items()}
    assert {row["table_name"]: row["batches"] for row in batches} == expected


async def test_a_custom_step_that_leaves_rows_is_never_called_clean(
    archive_db: asyncpg.Pool,
) -> None:
    """The probe after the tables: a purge step that removes nothing (a bug, or rows that keep
    appearing) fails the purge, retryably, and records no completion."""
    account_id = _account()
    await seed_archive(archive_db, account_id, ArchiveData())

    async def removes_nothing(conn: Connection, account_id: str, limit: int) -> int:
        return 0

    async def log_lines(conn: Connection, account_id: str) -> int:
        count: int = await conn.fetchval(
            "select count(*) from archive_access_log where account_id = $1", account_id
        )
        return count

    broken = KitProduct(
        name="archive",
        title="Archive Storage",
        tables=(),
        custom=(CustomPurge("archive_access_log", removes_nothing, log_lines),),
    )
    with pytest.raises(ApplicationError) as failed:
        await _purge(archive_db, account_id, product=broken)

    assert failed.value.type == PURGE_INCOMPLETE and not failed.value.non_retryable
    assert "archive_access_log" in failed.value.message
    assert await archive_db.fetchval("select count(*) from product_purges") == 0


async def test_a_worker_serves_its_own_product_only(archive_db: asyncpg.Pool) -> None:
    activities = ProductActivities(archive_db, ARCHIVE)
    request = PurgeProductInput(account_id=_account(), workflow_id="wf", product="compute")
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.purge_product, request)
    assert refused.value.type == UNKNOWN_PRODUCT and refused.value.non_retryable


def test_a_declaration_is_refused_when_it_does_not_hold_together() -> None:
    with pytest.raises(ValueError, match="not a product name"):
        KitProduct(name="Cold Archive", title="x", tables=())
    with pytest.raises(ValueError, match="declared twice"):
        KitProduct(name="x", title="x", tables=(TablePurge("a", "id"), TablePurge("a", "id")))
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        CustomPurge("log; drop table x", ARCHIVE.custom[0].batch, ARCHIVE.custom[0].remaining)
