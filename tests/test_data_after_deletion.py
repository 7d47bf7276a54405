"""What a finished deletion leaves in the database: none of the account's product rows (not even
rows written late, while the run waited), and its email and phone nowhere in clear.

End to end, on a real Temporal dev server and a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from accounts.registration import RegistrationRequest, register_account
from activities.notify import DeliveryFailed, Message, NotificationActivities, record_outgoing
from contract.models import DeliverNotificationInput, PurgeState
from contract.stages import Stage
from tests.support import Inbox, Stack, new_account, start_and_receive_code, wait_for_stage
from tests.support.stack import running_worker


async def test_rows_written_while_the_purge_was_blocked_are_purged_before_the_release(
    stack: Stack,
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)  # one (terminated) compute instance among its rows
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'dns', 'Hold H-14')",
        account_id,
    )
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        status = await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        assert {p.product: p.state for p in status.products}["compute"] is PurgeState.SUCCEEDED
        # Compute writes a row for the account late (months may pass in PURGE_BLOCKED).
        await pool.execute(
            "insert into compute_instances values ($1, $2, 'eu-west-1', 'late', 'e2-small',"
            " 'terminated')",
            f"i-late-{account_id}",
            account_id,
        )
        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        receipt = await (await deletions.handle(account_id)).result()

    assert receipt.outcome is Stage.DELETED
    assert (
        await pool.fetchval(
            "select count(*) from compute_instances where account_id = $1", account_id
        )
        == 0
    ), "a row written after the product's purge survived the deletion"
    compute = {p.product: p for p in receipt.products}["compute"]
    assert {t.table: t.rows for t in compute.tables}["compute_instances"] == 2
    assert compute.rows == 2 and compute.verified_clean
    assert (
        await pool.fetchval(
            "select rows from purge_progress where account_id = $1"
            " and product = 'compute' and table_name = 'compute_instances'",
            account_id,
        )
        == 2
    )
    late = await pool.fetch(
        "select detail->>'product' as product, (detail->>'rows')::int as rows"
        " from audit_events where account_id = $1 and kind = 'late_rows_purged'",
        account_id,
    )
    assert [(r["product"], r["rows"]) for r in late] == [("compute", 1)]
    recorded = await pool.fetchval(
        "select receipt from deletions where account_id = $1", account_id
    )
    assert recorded == receipt.model_dump(mode="json")
    # Released only after the late rows were gone.
    purged_at = await pool.fetchval(
        "select occurred_at from audit_events where account_id = $1 and kind = 'late_rows_purged'",
        account_id,
    )
    released_at = await pool.fetchval(
        "select occurred_at from audit_events"
        " where account_id = $1 and kind = 'identifiers_released'",
        account_id,
    )
    assert released_at >= purged_at


# --- no email or phone left in clear -------------------------------------------------------------


class _Unreachable:
    """A gateway that accepts nothing: the messages stay undelivered in the outbox."""

    async def deliver(self, message: Message) -> None:
        raise DeliveryFailed("gateway answered HTTP 503")


async def _texts_holding(pool: asyncpg.Pool, needles: list[str]) -> list[str]:
    """Every text, varchar and json(b) column of every table that holds one of the needles
    (case-insensitively), as `table.column`."""
    found = []
    async with pool.acquire() as conn:
        columns = await conn.fetch(
            """
            select c.table_name, c.column_name from information_schema.columns c
            join information_schema.tables t using (table_schema, table_name)
            where c.table_schema = current_schema() and t.table_type = 'BASE TABLE'
              and c.data_type in ('text', 'character varying', 'character', 'json', 'jsonb')
            """
        )
        assert len(columns) > 20
        for column in columns:
            # The names come from the catalogue, not from input.
            hits = await conn.fetchval(
                f'select count(*) from "{column["table_name"]}" t, unnest($1::text[]) n'
                f' where strpos(lower(t."{column["column_name"]}"::text), n) > 0',
                [needle.lower() for needle in needles],
            )
            if hits:
                found.append(f"{column['table_name']}.{column['column_name']}")
    return found


async def test_after_the_deletion_the_email_and_phone_are_nowhere_in_the_database(
    stack: Stack,
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    tag = uuid.uuid4().hex[:8]
    number = str(2_000_000 + uuid.uuid4().int % 8_000_000)
    registered_email, registered_phone = f"Jane.{tag}@Example.COM", f"+1 (415) {number}"
    account = await register_account(
        pool,
        RegistrationRequest(user_name=f"jane{tag}", email=registered_email, phone=registered_phone),
    )
    account_id = account.account_id
    email, phone = registered_email.lower(), f"+1415{number}"
    assert await _texts_holding(pool, [email, phone]) != []  # the scan sees them while held

    # A first deletion whose code never got through (the gateway was down) and was cancelled:
    # its message stays undelivered in the outbox.
    async with running_worker(stack.client, pool, stack.task_queue, _Unreachable()):
        await deletions.start(account_id)
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        async with asyncio.timeout(20):
            while not await pool.fetchval(
                "select count(*) from notification_outbox where account_id = $1 and attempts > 0",
                account_id,
            ):
                await asyncio.sleep(0.1)
        handle = await deletions.handle(account_id)
        await handle.cancel()
        async with asyncio.timeout(20):
            while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                await asyncio.sleep(0.1)

    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        receipt = await (await deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED
    assert [m.to for m in inbox.messages] == [email, email]  # the code and the confirmation

    needles = [email, registered_email, phone, registered_phone, phone.removeprefix("+")]
    assert await _texts_holding(pool, needles) == []


async def _confirmation(pool: asyncpg.Pool, account_id: str, *, age: timedelta) -> str:
    """An undelivered confirmation in the outbox, recorded `age` ago; returns its key."""
    key = f"deleted-{uuid.uuid4()}"
    async with pool.acquire() as conn:
        await record_outgoing(
            conn,
            idempotency_key=key,
            account_id=account_id,
            channel="email",
            recipient="jane@example.com",
            template="account_deleted",
            body="Your cloud account has been deleted.",
        )
        await conn.execute(
            "update notification_outbox set created_at = now() - $2::interval"
            " where idempotency_key = $1",
            key,
            age,
        )
    return key


async def _kept(pool: asyncpg.Pool, key: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "select recipient, body, delivered_at, last_error from notification_outbox"
        " where idempotency_key = $1",
        key,
    )
    assert row is not None
    return row


def _attempt(*, scheduled_ago: timedelta) -> ActivityEnvironment:
    """An attempt of a delivery retried for a day, scheduled first `scheduled_ago`."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        scheduled_time=datetime.now(UTC) - scheduled_ago,
        schedule_to_close_timeout=timedelta(days=1),
        start_to_close_timeout=timedelta(seconds=30),
    )
    return env


async def test_an_undelivered_confirmation_keeps_its_recipient_only_until_it_expires(
    pool: asyncpg.Pool,
) -> None:
    account_id = await new_account(pool)
    down = NotificationActivities(pool, _Unreachable())
    inbox = Inbox()

    # Within the day the recipient stays, so that a later attempt can still deliver it.
    young = await _confirmation(pool, account_id, age=timedelta(hours=1))
    with pytest.raises(DeliveryFailed):
        await _attempt(scheduled_ago=timedelta(hours=1)).run(
            down.deliver_notification, DeliverNotificationInput(idempotency_key=young)
        )
    assert (await _kept(pool, young))["recipient"] == "jane@example.com"

    # The last attempt before the deadline fails: the message expires with it.
    with pytest.raises(ApplicationError) as expired:
        await _attempt(scheduled_ago=timedelta(hours=23, minutes=59, seconds=45)).run(
            down.deliver_notification, DeliverNotificationInput(idempotency_key=young)
        )
    assert expired.value.type == "NotificationExpired" and expired.value.non_retryable
    row = await _kept(pool, young)
    assert row["recipient"] is None and row["body"] is None and row["delivered_at"] is None
    assert row["last_error"] == "expired undelivered"

    # Older than a day, whoever tries: expired, not delivered.
    old = await _confirmation(pool, account_id, age=timedelta(days=1, minutes=1))
    with pytest.raises(ApplicationError, match="expired undelivered"):
        await _attempt(scheduled_ago=timedelta(minutes=1)).run(
            NotificationActivities(pool, inbox).deliver_notification,
            DeliverNotificationInput(idempotency_key=old),
        )
    assert inbox.messages == []
    assert (await _kept(pool, old))["recipient"] is None
