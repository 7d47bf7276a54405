"""Crashes: a real worker process SIGKILLed in the middle of purging a large account."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from starter.client import DeletionClient
from tests.support import (
    Gateway,
    assert_deleted_exactly_once,
    new_account,
    purged_rows,
    running_gateway,
    seed_residual_rows,
    settled_purged_rows,
    start_and_receive_code_by_webhook,
    webhook_worker_env,
    worker_process,
)

pytestmark = pytest.mark.slow


async def test_a_worker_killed_mid_purge_loses_nothing_and_repeats_nothing(
    client: Client,
    pool: asyncpg.Pool,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    account_id = await new_account(pool)
    seeded = await seed_residual_rows(
        pool, account_id, objects=30_000, records=15_000, access_logs=15_000
    )
    total = sum(seeded.values())
    deletions = DeletionClient(client, pool, task_queue)
    gateway: Gateway
    with running_gateway() as gateway:
        env = webhook_worker_env(
            client, task_queue, database_url, gateway, batch_size=100, shutdown_seconds=5
        )
        log = tmp_path / "workers.log"
        with worker_process(env, log) as first:
            code = await start_and_receive_code_by_webhook(
                deletions, gateway, account_id, requested_by="crash-test"
            )
            await deletions.submit_code(account_id, code)
            async with asyncio.timeout(60):
                while await purged_rows(pool, account_id) < total // 5:
                    await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        at_kill = await settled_purged_rows(pool, account_id)
        assert 0 < at_kill < total, "the kill must land in the middle of the purge"
        await asyncio.sleep(1)
        assert await purged_rows(pool, account_id) == at_kill  # nobody purges meanwhile

        with worker_process(env, log):
            handle = await deletions.handle(account_id)
            receipt = await asyncio.wait_for(handle.result(), timeout=180)

    await assert_deleted_exactly_once(pool, account_id, seeded, receipt)
    worker_logs = log.read_text()
    assert "[dev inbox]" not in worker_logs
    assert not re.search(rf"\b{code}\b", worker_logs), "the code leaked into the logs"
    confirmations = [m for m in gateway.received if "has been deleted" in m["body"]]
    assert len(confirmations) == 1 and confirmations[0]["account_id"] == account_id
