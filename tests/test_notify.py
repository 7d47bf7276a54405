"""Notifications: the webhook gateway is retried until it accepts; nothing secret is kept."""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio.client import Client

from activities.notify import WebhookNotifier
from contract.stages import Stage
from starter.client import DeletionClient
from tests.support import new_account, running_gateway, running_worker, wait_for_stage


async def test_the_code_reaches_the_gateway_after_it_refused_twice_and_is_not_stored(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    account_id = await new_account(pool)
    deletions = DeletionClient(client, pool, task_queue)
    with running_gateway() as gateway:
        gateway.failures_left = 2
        notifier = WebhookNotifier(gateway.url)
        try:
            async with running_worker(client, pool, task_queue, notifier):
                await deletions.start(account_id)
                async with asyncio.timeout(30):
                    while not gateway.codes_for(account_id):
                        await asyncio.sleep(0.1)
                [code] = gateway.codes_for(account_id)
                status = await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
                await deletions.cancel(account_id)
                await (await deletions.handle(account_id)).result()
        finally:
            await notifier.aclose()
    [message] = gateway.received
    assert message["channel"] == "email"
    assert message["to"].endswith("@example.com")
    assert status.verification is not None
    assert status.verification.destination == message["to"][0] + "***@example.com"
    row = await pool.fetchrow(
        "select attempts, delivered_at, recipient, body, last_error from notification_outbox"
        " where account_id = $1",
        account_id,
    )
    assert row is not None
    assert row["attempts"] == 3
    assert row["delivered_at"] is not None
    assert row["recipient"] is None and row["body"] is None
    # Neither the outbox nor any other table holds the code in clear.
    dump = await pool.fetchval(
        """
        select string_agg(t::text, ' ') from (
            select to_jsonb(o)::text as t from notification_outbox o
            union all select to_jsonb(c)::text from verification_challenges c
            union all select to_jsonb(a)::text from audit_events a
            union all select to_jsonb(d)::text from deletions d
        ) s
        """
    )
    assert code not in dump
