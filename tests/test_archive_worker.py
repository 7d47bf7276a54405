"""The example product `archive` (driver `worker`) end to end: its worker is
`account-deletion product-worker archive` in a process of its own, on a database of its own,
beside a deletion worker whose catalog declares it (as PRODUCTS_FILE would).

While that worker is down a deletion waits in PURGING, nothing released; when it starts the
deletion completes with the archive's exact counts. Killed mid-purge, a restarted worker
resumes and counts each row once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from contract.models import DeletionPolicy, ProductDriver, PurgeState
from contract.stages import Stage
from kit.archive import SCHEMA, ArchiveData, seed_archive
from kit.archive.seed import TABLES
from kit.schema import ensure_schema
from registry.catalog import Catalog, DeclaredProduct
from registry.products import PRODUCTS
from tests.conftest import TEST_PAYLOAD_KEYS
from tests.support import (
    Stack,
    new_account,
    new_database,
    product_worker_process,
    purged_rows,
    record_history,
    settled_purged_rows,
    start_and_receive_code,
    wait_for_stage,
)

CATALOG = Catalog([DeclaredProduct(name="archive", driver=ProductDriver.WORKER, title="Archive")])
"""The deletion worker's products: the built-in ones and `archive`, as PRODUCTS_FILE declares."""

POLICY = DeletionPolicy(
    product_check_wait=timedelta(seconds=1), purge_heartbeat_timeout=timedelta(seconds=3)
)
"""A down archive worker holds the live-resource check 1 s, not a minute; a killed one's purge
is retried after 3 s without a heartbeat."""


@pytest.fixture
async def archive_url(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """The archive team's database, with the archive's schema (its worker would create it)."""
    async with new_database(postgres_admin_dsn, f"archive_{uuid.uuid4().hex[:12]}") as url:
        yield url


async def _archive_pool(url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    await ensure_schema(pool, *SCHEMA)
    return pool


async def _archive_rows(archive: asyncpg.Pool, account_id: str) -> dict[str, int]:
    return {
        table: int(
            await archive.fetchval(f"select count(*) from {t} where account_id = $1", account_id)
        )
        for table in TABLES
        if (t := table)
    }


async def _held_claims(pool: asyncpg.Pool, account_id: str) -> int:
    return int(
        await pool.fetchval(
            "select count(*) from identifier_claims where account_id = $1 and released_at is null",
            account_id,
        )
    )


@pytest.mark.slow
async def test_a_deletion_waits_in_purging_for_the_archive_worker_and_completes_when_it_runs(
    stack: Stack, archive_url: str, tmp_path: Path
) -> None:
    account_id = await new_account(stack.pool)
    archive = await _archive_pool(archive_url)
    try:
        seeded = await seed_archive(archive, account_id, ArchiveData(objects=30))
        async with stack.worker(catalog=CATALOG):
            code = await start_and_receive_code(stack.deletions, stack.inbox, account_id, POLICY)
            await stack.deletions.submit_code(account_id, code)
            await wait_for_stage(stack.deletions, account_id, Stage.PURGING)
            async with asyncio.timeout(30):
                while True:
                    status = await stack.deletions.status(account_id)
                    states = {p.product: p.state for p in status.products}
                    if all(states.get(p.name) is PurgeState.SUCCEEDED for p in PRODUCTS):
                        break
                    await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # ample time to go wrong

            status = await stack.deletions.status(account_id)
            assert status.stage is Stage.PURGING and not status.identifiers_released
            (waiting,) = [p for p in status.products if p.product == "archive"]
            assert waiting.state is PurgeState.RUNNING and waiting.driver is ProductDriver.WORKER
            assert await _held_claims(stack.pool, account_id) == 3, "identifiers released early"
            assert await _archive_rows(archive, account_id) == seeded, "nothing purged yet"
            recorded = await stack.pool.fetchval(
                "select count(*) from product_purges where account_id = $1 and product = $2",
                account_id,
                "archive",
            )
            assert recorded == 0, "the archive recorded done before its worker ran"

            with product_worker_process(
                stack.client, "archive", {"ARCHIVE_DATABASE_URL": archive_url}, tmp_path / "log"
            ):
                handle = await stack.deletions.handle(account_id)
                receipt = await asyncio.wait_for(handle.result(), timeout=90)

        assert receipt.outcome is Stage.DELETED
        await record_history(stack.client, account_id, "worker_product_waited_for")
        (purged,) = [p for p in receipt.products if p.product == "archive"]
        assert purged.driver is ProductDriver.WORKER and purged.verified_clean
        assert {t.table: t.rows for t in purged.tables} == seeded
        assert set((await _archive_rows(archive, account_id)).values()) == {0}
        assert await _held_claims(stack.pool, account_id) == 0
        recorded = await stack.pool.fetchrow(
            "select driver, completed_at from product_purges"
            " where account_id = $1 and product = 'archive'",
            account_id,
        )
        assert recorded is not None and recorded["driver"] == "worker"
        assert receipt.identifiers_released_at is not None
        assert recorded["completed_at"] <= receipt.identifiers_released_at
    finally:
        await archive.close()


@pytest.mark.slow
async def test_a_killed_archive_worker_is_resumed_by_the_next_with_exact_counts(
    stack: Stack, archive_url: str, tmp_path: Path
) -> None:
    account_id = await new_account(stack.pool)
    archive = await _archive_pool(archive_url)
    try:
        seeded = await seed_archive(
            archive, account_id, ArchiveData(vaults=2, objects=250_000, log_lines=2_000)
        )
        total = sum(seeded.values())
        env = {
            "ARCHIVE_DATABASE_URL": archive_url,
            "PURGE_BATCH_SIZE": "25",
            "PURGE_BATCH_SECONDS": "0",  # batches of 25 rows: counted below
        }
        log = tmp_path / "archive.log"
        async with stack.worker(catalog=CATALOG):
            with product_worker_process(stack.client, "archive", env, log) as first:
                code = await start_and_receive_code(
                    stack.deletions, stack.inbox, account_id, POLICY
                )
                await stack.deletions.submit_code(account_id, code)
                async with asyncio.timeout(60):
                    while await purged_rows(archive, account_id) == 0:
                        await asyncio.sleep(0.05)
                # Past its quiet start (a quarter of the heartbeat timeout) and the SDK's
                # heartbeat throttle (0.8 of the timeout): a heartbeat reached the server.
                await asyncio.sleep(3.5)
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            at_kill = await settled_purged_rows(archive, account_id)
            assert 0 < at_kill < total, "the kill must land in the middle of the purge"
            left = sum((await _archive_rows(archive, account_id)).values())
            assert at_kill + left == total, "what is counted is exactly what is gone"
            await asyncio.sleep(1)
            assert await purged_rows(archive, account_id) == at_kill  # nobody purges meanwhile

            with product_worker_process(stack.client, "archive", env, log):
                handle = await stack.deletions.handle(account_id)
                receipt = await asyncio.wait_for(handle.result(), timeout=120)

        assert receipt.outcome is Stage.DELETED
        (purged,) = [p for p in receipt.products if p.product == "archive"]
        assert {t.table: t.rows for t in purged.tables} == seeded
        assert set((await _archive_rows(archive, account_id)).values()) == {0}
        assert "resuming purge of archive" in log.read_text()
        batches = await archive.fetchval(
            "select sum(batches) from purge_progress where account_id = $1", account_id
        )
        assert batches == sum(-(-rows // 25) for rows in seeded.values()), "a batch counted twice"
    finally:
        await archive.close()


async def test_rows_the_archive_writes_after_its_purge_are_purged_before_identifiers_go(
    stack: Stack, archive_url: str, tmp_path: Path
) -> None:
    """A run held in PURGE_BLOCKED by another product, while the archive (purged) gets new rows:
    before identifiers are released, the archive's worker purges those too, and the receipt
    counts them."""
    account_id = await new_account(stack.pool)
    await stack.pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'dns', 'Hold H-9')",
        account_id,
    )
    archive = await _archive_pool(archive_url)
    try:
        seeded = await seed_archive(archive, account_id, ArchiveData(objects=20))
        env = {"ARCHIVE_DATABASE_URL": archive_url}
        async with stack.worker(catalog=CATALOG):
            with product_worker_process(stack.client, "archive", env, tmp_path / "log"):
                code = await start_and_receive_code(
                    stack.deletions, stack.inbox, account_id, POLICY
                )
                await stack.deletions.submit_code(account_id, code)
                blocked = await wait_for_stage(
                    stack.deletions, account_id, Stage.PURGE_BLOCKED, timeout=60
                )
                states = {p.product: p.state for p in blocked.products}
                assert states["archive"] is PurgeState.SUCCEEDED
                # The archive team's service writes late, though the account is frozen.
                late_vault = f"late-{account_id}"
                await archive.execute(
                    "insert into archive_vaults (vault_id, account_id, name, region, state)"
                    " values ($1, $2, 'late', 'eu-west-1', 'deleted')",
                    late_vault,
                    account_id,
                )
                await archive.execute(
                    "insert into archive_objects (account_id, vault_id, object_key, size_bytes)"
                    " select $1, $2, 'late/' || n, 1 from generate_series(1, 6) n",
                    account_id,
                    late_vault,
                )
                await stack.pool.execute(
                    "update legal_holds set lifted_at = now() where account_id = $1", account_id
                )
                await stack.deletions.retry(account_id)
                handle = await stack.deletions.handle(account_id)
                receipt = await asyncio.wait_for(handle.result(), timeout=90)

        assert receipt.outcome is Stage.DELETED
        assert set((await _archive_rows(archive, account_id)).values()) == {0}
        (purged,) = [p for p in receipt.products if p.product == "archive"]
        counted = {t.table: t.rows for t in purged.tables}
        assert counted["archive_objects"] == seeded["archive_objects"] + 6
        assert counted["archive_vaults"] == seeded["archive_vaults"] + 1
        assert sum(counted.values()) == sum(seeded.values()) + 7
    finally:
        await archive.close()


async def _refusal(*args: str, **changes: str | None) -> tuple[int, str]:
    """`account-deletion product-worker ...` with the environment `changes` made (None removes
    a variable), on servers that do not answer."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "ARCHIVE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/archive",
        "DATA_DIR": "/nonexistent-data-dir",
        "PAYLOAD_KEYS": os.environ.get("PAYLOAD_KEYS") or TEST_PAYLOAD_KEYS,
    }
    env.pop("DATABASE_URL", None)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "product-worker",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"ARCHIVE_DATABASE_URL": None}, "ARCHIVE_DATABASE_URL is not set"),
        ({"PAYLOAD_KEYS": None}, "PAYLOAD_KEYS is not set"),
        ({"WORKER_METRICS_ADDRESS": "everywhere"}, "WORKER_METRICS_ADDRESS must be"),
        ({"PURGE_BATCH_SIZE": "0"}, "PURGE_BATCH_SIZE"),
        ({"PURGE_BATCH_SECONDS": "1"}, "PURGE_BATCH_SECONDS"),
    ],
)
async def test_the_archive_worker_refuses_bad_configuration_in_one_line(
    changes: dict[str, str | None], named: str
) -> None:
    code, output = await _refusal("archive", **changes)
    assert code == 2, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    assert named in output, output


async def test_only_a_bundled_product_has_a_worker_to_run() -> None:
    code, output = await _refusal("mainframe")
    assert code == 2 and "invalid choice: 'mainframe'" in output, output
