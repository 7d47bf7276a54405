"""Operations: a worker stopped with SIGTERM in the middle of a purge hands the run over to
another worker, and the API's health endpoints tell a stopped PostgreSQL apart from a dead
process."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from contract.stages import Stage
from core.config import Settings
from service.api import create_app
from starter.client import DeletionClient
from store.db import create_pool
from tests.support import (
    API_TOKEN,
    in_process_api,
    migrated_embedded_postgres,
    new_account,
    object_locked,
    purged_rows,
    running_gateway,
    seed_residual_rows,
    start_and_receive_code_by_webhook,
    webhook_worker_env,
    worker_process,
)

pytestmark = pytest.mark.slow


async def object_rows_purged(pool: asyncpg.Pool, account_id: str) -> int:
    return int(
        await pool.fetchval(
            "select coalesce(sum(rows), 0) from purge_progress"
            " where account_id = $1 and product = 'object_storage'",
            account_id,
        )
    )


async def test_a_worker_stopped_with_sigterm_mid_purge_hands_the_run_to_another(
    client: Client,
    pool: asyncpg.Pool,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    account_id = await new_account(pool)
    seeded = await seed_residual_rows(pool, account_id, objects=4_000, records=1_500)
    total = sum(seeded.values())
    deletions = DeletionClient(client, pool, task_queue)
    with running_gateway() as gateway:
        env = webhook_worker_env(
            client, task_queue, database_url, gateway, batch_size=100, shutdown_seconds=1
        )
        log = tmp_path / "workers.log"
        with worker_process(env, log) as first:
            code = await start_and_receive_code_by_webhook(
                deletions, gateway, account_id, requested_by="takeover-test"
            )
            async with object_locked(pool, account_id, position=2_345):
                await deletions.submit_code(account_id, code)
                # 23 batches of 100 objects went; the 24th waits for the locked object.
                async with asyncio.timeout(60):
                    while await object_rows_purged(pool, account_id) < 2_300:
                        await asyncio.sleep(0.05)
                first.send_signal(signal.SIGTERM)
                # It stops polling, gives the running purge its grace, then exits.
                exit_code = await asyncio.to_thread(first.wait, 30)
        assert exit_code == 0, log.read_text()[-3000:]
        at_stop = await purged_rows(pool, account_id)
        assert 0 < at_stop < total, "the stop must land in the middle of the purge"
        # (The row, not the status query: a query needs a worker.)
        stage = await pool.fetchval("select stage from deletions where account_id = $1", account_id)
        assert stage == Stage.PURGING.value
        await asyncio.sleep(1)
        assert await purged_rows(pool, account_id) == at_stop  # nobody purges meanwhile

        with worker_process(env, log):
            handle = await deletions.handle(account_id)
            receipt = await asyncio.wait_for(handle.result(), timeout=60)

    assert receipt.outcome is Stage.DELETED
    counted = {t.table: t.rows for p in receipt.products for t in p.tables}
    for table, rows in seeded.items():
        assert counted[table] == rows, table
        # The table names come from seed_residual_rows's literal list.
        left = await pool.fetchval(
            f"select count(*) from {table} where account_id = $1", account_id
        )
        assert left == 0, table
    assert await purged_rows(pool, account_id) == sum(p.rows for p in receipt.products)
    purged_events = await pool.fetch(
        "select detail->>'product' as product from audit_events"
        " where account_id = $1 and kind = 'product_purged'",
        account_id,
    )
    products = [r["product"] for r in purged_events]
    assert sorted(products) == sorted(set(products)), "a product was purged twice"
    assert receipt.identifiers_released_at is not None
    assert receipt.identifiers_released_at >= max(p.completed_at for p in receipt.products)


async def test_readyz_reports_a_stopped_postgresql_while_healthz_stays_up(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    async with migrated_embedded_postgres(tmp_path / "postgres" / "data") as (server, dsn):
        pool = await create_pool(dsn, max_size=2)
        try:
            app = create_app(
                Settings(api_token=API_TOKEN, temporal_task_queue=task_queue),
                pool=pool,
                client=client,
            )
            async with in_process_api(app) as http:
                ready = await http.get("/readyz")
                assert ready.status_code == 200
                assert ready.json() == {"ready": True, "postgres": "ok", "temporal": "ok"}

                await asyncio.to_thread(server.stop)

                not_ready = await http.get("/readyz")
                assert not_ready.status_code == 503
                body = not_ready.json()
                assert body["ready"] is False
                assert body["postgres"].startswith("unavailable ("), body
                assert body["temporal"] == "ok"
                health = await http.get("/healthz")
                assert health.status_code == 200
                assert health.json() == {"status": "ok"}
        finally:
            pool.terminate()
