"""Notifications: the webhook gateway is retried until it accepts, every request is signed the
Standard Webhooks way (the test gateway verifies it); nothing secret is kept."""

from __future__ import annotations

import asyncio
import base64

import asyncpg
import pytest
from temporalio.client import Client

from activities.notify import DeliveryFailed, Message, WebhookNotifier
from contract.stages import Stage
from core.config import ConfigurationError
from core.webhooks import webhook_signer
from starter.client import DeletionClient
from tests.support import new_account, running_gateway, running_worker, wait_for_stage
from tests.support.gateway import new_webhook_secret


async def test_the_code_reaches_the_gateway_after_it_refused_twice_and_is_not_stored(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    account_id = await new_account(pool)
    deletions = DeletionClient(client, pool, task_queue)
    with running_gateway() as gateway:
        gateway.failures_left = 2
        notifier = WebhookNotifier(gateway.url, secret=gateway.secret)
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
    assert gateway.rejected == []
    [headers] = gateway.headers
    assert headers["webhook-id"] == message["notification_id"], "the same id on every retry"
    assert headers["webhook-signature"].startswith("v1,")
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


async def test_the_gateway_refuses_a_request_signed_with_another_secret_or_unsigned() -> None:
    message = Message("2f1d3c4e-0000-4000-8000-000000000001", "acct-x", "sms", "+1415", "hi")
    with running_gateway() as gateway:
        for notifier in (
            WebhookNotifier(gateway.url, secret=new_webhook_secret()),
            WebhookNotifier(gateway.url),
        ):
            try:
                with pytest.raises(DeliveryFailed, match="HTTP 401"):
                    await notifier.deliver(message)
            finally:
                await notifier.aclose()
        signed = WebhookNotifier(gateway.url, secret=gateway.secret)
        try:
            await signed.deliver(message)
        finally:
            await signed.aclose()
    assert len(gateway.rejected) == 2
    assert [m["body"] for m in gateway.received] == ["hi"]


@pytest.mark.parametrize(
    "secret",
    [
        base64.b64encode(bytes(32)).decode(),  # no whsec_ prefix
        "whsec_not base64!!",
        "whsec_" + base64.b64encode(bytes(8)).decode(),  # too short to be a key
        "whsec_",
    ],
)
def test_a_webhook_secret_that_is_not_whsec_base64_is_refused_without_echoing_it(
    secret: str,
) -> None:
    with pytest.raises(ConfigurationError, match="NOTIFY_WEBHOOK_SECRET must be whsec_") as raised:
        webhook_signer(secret)
    body = secret.removeprefix("whsec_")
    if len(body) > 8:
        assert body not in str(raised.value)
