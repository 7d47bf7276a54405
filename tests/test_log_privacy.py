"""Nothing personal or secret in the logs of a complete deletion: no code, email or phone."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from temporalio.client import Client

from starter.client import DeletionClient
from tests.support import Inbox, new_account, running_worker, start_and_receive_code


async def test_the_logs_of_a_deletion_hold_no_code_email_or_phone(
    client: Client, pool: asyncpg.Pool, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    deletions = DeletionClient(client, pool, task_queue)
    account_id = await new_account(pool)
    account = await pool.fetchrow(
        "select email, phone from accounts where account_id = $1", account_id
    )
    assert account is not None
    caplog.set_level(logging.DEBUG)
    async with running_worker(client, pool, task_queue, inbox):
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.verify(account_id, "000000" if code != "000000" else "111111")
        await deletions.verify(account_id, code)
        await (await deletions.handle(account_id)).result()
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "verification attempt: wrong" in logged  # the run's activities did log
    for secret in (code, account["email"], account["phone"], account["phone"][1:]):
        assert secret not in logged
