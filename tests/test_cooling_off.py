"""A 15-day cooling-off on the time-skipping test server: the notices at their moments, the
purge after it, a bill issued during it, restore before its end and not after, and a long
window that continues as new.

Real activities on a real PostgreSQL; only the clock is virtual and moves only in `env.sleep`.
This server takes no updates and never times out a sticky queue: signals only, one worker per
test, and every test ends its run before it returns (the server's clock is shared).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contract.messages import CancelInput, RecheckInput, RestoreInput, RetryPurgesInput
from contract.models import DeletionPolicy, DeletionReceipt, DeletionStatus, TaskCategory
from contract.names import DELETION_STAGE
from contract.stages import Stage
from starter.client import DeletionClient
from tests.support import Inbox, Stack, new_account, record_history
from tests.support.time_skipping import time_skipping_env
from workflows.account_deletion import AccountDeletion

WINDOW = timedelta(days=15)
POLICY = DeletionPolicy(cooling_off=WINDOW)
STARTED = "frozen and will be deleted on"
REMINDER = "will be deleted tomorrow"
RESTORED = "has been restored"

Handle = WorkflowHandle[AccountDeletion, DeletionReceipt]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as env:
        yield env


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    """The `stack` of every test here runs on the time-skipping server."""
    return env.client


async def status_when(
    deletions: DeletionClient,
    account_id: str,
    predicate: Callable[[DeletionStatus], bool],
    *,
    timeout: float = 30,
) -> DeletionStatus:
    """Polls the `status` query (which does not move the clock) until the predicate holds."""
    async with asyncio.timeout(timeout):
        while True:
            status = await deletions.status(account_id)
            if predicate(status):
                return status
            await asyncio.sleep(0.05)


def notices(inbox: Inbox, account_id: str, words: str) -> list[str]:
    return [m.body for m in inbox.messages if m.account_id == account_id and words in m.body]


async def notice(inbox: Inbox, account_id: str, words: str, *, timeout: float = 20) -> str:
    """The one message with these words, once it arrived."""
    async with asyncio.timeout(timeout):
        while not notices(inbox, account_id, words):
            inbox.arrived.clear()
            await inbox.arrived.wait()
    [body] = notices(inbox, account_id, words)
    return body


async def into_cooling_off(stack: Stack, account_id: str, policy: DeletionPolicy) -> Handle:
    """Starts the deletion, confirms it with the code, and waits for the window."""
    await stack.deletions.start(account_id, policy=policy)
    code = await stack.inbox.next_code(account_id)
    await status_when(stack.deletions, account_id, lambda s: s.verification is not None)
    await stack.deletions.submit_code(account_id, code)
    await status_when(stack.deletions, account_id, lambda s: s.stage is Stage.COOLING_OFF)
    return await stack.deletions.handle(account_id)


async def account_status(pool: asyncpg.Pool, account_id: str) -> str | None:
    status: str | None = await pool.fetchval(
        "select status from accounts where account_id = $1", account_id
    )
    return status


async def data_rows(pool: asyncpg.Pool, account_id: str) -> int:
    """The account's rows in the products `new_account` filled: gone only once purged."""
    rows: int = await pool.fetchval(
        """
        select (select count(*) from storage_objects where account_id = $1)
             + (select count(*) from compute_instances where account_id = $1)
             + (select count(*) from storage_buckets where account_id = $1)
        """,
        account_id,
    )
    return rows


async def purges_scheduled(handle: Handle) -> list[datetime]:
    """When each product's purge was scheduled, on the server's (skipping) clock."""
    history = await handle.fetch_history()
    return [
        event.event_time.ToDatetime(tzinfo=UTC)
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == "purge_product"
    ]


async def stage_changes(pool: asyncpg.Pool, account_id: str, stage: Stage) -> int:
    changes: int = await pool.fetchval(
        "select count(*) from audit_events where account_id = $1 and kind = 'stage_changed'"
        " and detail->>'stage' = $2",
        account_id,
        stage.value,
    )
    return changes


async def held_identifiers(pool: asyncpg.Pool, account_id: str) -> int:
    held: int = await pool.fetchval(
        "select count(*) from identifier_claims where account_id = $1 and released_at is null",
        account_id,
    )
    return held


async def test_a_15_day_window_notifies_at_its_start_and_a_day_before_its_end_then_purges(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    rows = await data_rows(pool, account_id)
    async with stack.worker():
        handle = await into_cooling_off(stack, account_id, POLICY)
        status = await deletions.status(account_id)
        started_at = (await handle.describe()).start_time
        purge_starts_at = status.purge_starts_at
        assert purge_starts_at is not None
        assert WINDOW <= purge_starts_at - started_at < WINDOW + timedelta(minutes=1)
        when = f"{purge_starts_at:%d %B %Y at %H:%M} UTC"
        assert when in await notice(inbox, account_id, STARTED)
        assert await account_status(pool, account_id) == "frozen"

        await env.sleep(WINDOW - timedelta(days=1, hours=1))
        status = await deletions.status(account_id)
        assert status.stage is Stage.COOLING_OFF and status.products == []
        assert notices(inbox, account_id, REMINDER) == []
        assert await data_rows(pool, account_id) == rows

        await env.sleep(timedelta(hours=2))
        assert when in await notice(inbox, account_id, REMINDER)
        assert (await deletions.status(account_id)).stage is Stage.COOLING_OFF

        await env.sleep(timedelta(days=1))
        await status_when(deletions, account_id, lambda s: s.stage.is_final, timeout=60)
        receipt = await handle.result()
    assert receipt.outcome is Stage.DELETED
    # (the receipt's times are PostgreSQL's, which does not skip: the history's are the server's)
    assert min(await purges_scheduled(handle)) >= purge_starts_at
    assert await data_rows(pool, account_id) == 0
    assert len(notices(inbox, account_id, STARTED)) == 1
    assert len(notices(inbox, account_id, REMINDER)) == 1
    assert await stage_changes(pool, account_id, Stage.COOLING_OFF) == 1
    await record_history(stack.client, account_id, "cooling_off_then_purged")


async def test_a_bill_issued_during_the_window_sends_the_run_back_to_tasks_still_frozen(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    rows = await data_rows(pool, account_id)
    async with stack.worker():
        handle = await into_cooling_off(stack, account_id, POLICY)
        await env.sleep(timedelta(days=5))
        await pool.execute(
            "insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)"
            " values ($1, $2, '2026-12', 4200, 'unpaid', 'Jane Doe')",
            f"late-{account_id}",
            account_id,
        )
        await env.sleep(WINDOW - timedelta(days=5) + timedelta(hours=1))
        status = await status_when(deletions, account_id, lambda s: s.stage is Stage.AWAITING_TASKS)
        assert [task.category for task in status.pending_tasks] == [TaskCategory.ARREARS]
        assert status.purge_starts_at is None and status.products == []
        assert await account_status(pool, account_id) == "frozen"
        assert await data_rows(pool, account_id) == rows

        await pool.execute(
            "update bills set status = 'paid' where bill_id = $1", f"late-{account_id}"
        )
        await handle.signal(AccountDeletion.recheck_prerequisites, RecheckInput())
        await status_when(deletions, account_id, lambda s: s.stage.is_final, timeout=60)
        receipt = await handle.result()
    # Purged once the bill was paid, without a second window.
    assert receipt.outcome is Stage.DELETED
    assert await stage_changes(pool, account_id, Stage.COOLING_OFF) == 1
    assert await data_rows(pool, account_id) == 0
    await record_history(stack.client, account_id, "cooling_off_new_tasks_then_purged")


async def test_a_cancel_while_tasks_are_pending_after_the_window_unfreezes_the_account(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    rows = await data_rows(pool, account_id)
    async with stack.worker():
        handle = await into_cooling_off(stack, account_id, POLICY)
        await pool.execute(
            "insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)"
            " values ($1, $2, '2026-12', 4200, 'unpaid', 'Jane Doe')",
            f"late-{account_id}",
            account_id,
        )
        await env.sleep(WINDOW + timedelta(minutes=1))
        await status_when(deletions, account_id, lambda s: s.stage is Stage.AWAITING_TASKS)
        assert await account_status(pool, account_id) == "frozen"
        await handle.signal(AccountDeletion.cancel, CancelInput(reason="changed my mind"))
        receipt = await handle.result()
    assert receipt.outcome is Stage.CANCELLED and receipt.reason == "changed my mind"
    assert await account_status(pool, account_id) == "active"
    assert await data_rows(pool, account_id) == rows
    assert await held_identifiers(pool, account_id) == 3


async def test_restore_before_the_end_gives_the_account_back_and_it_can_be_deleted_later(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    rows = await data_rows(pool, account_id)
    async with stack.worker():
        handle = await into_cooling_off(stack, account_id, POLICY)
        await notice(inbox, account_id, STARTED)
        await env.sleep(timedelta(days=10))
        await handle.signal(AccountDeletion.restore, RestoreInput())
        receipt = await handle.result()
        described = await handle.describe()
        await notice(inbox, account_id, RESTORED)
        await record_history(stack.client, account_id, "cooling_off_restored")

        assert receipt.outcome is Stage.RESTORED and receipt.reason == "restored by the user"
        assert receipt.products == [] and receipt.identifiers_released_at is None
        assert described.typed_search_attributes.get(DELETION_STAGE) == "RESTORED"
        assert await account_status(pool, account_id) == "active"
        assert await data_rows(pool, account_id) == rows
        assert await held_identifiers(pool, account_id) == 3
        row = await pool.fetchrow(
            "select stage, closed_at from deletions where account_id = $1", account_id
        )
        assert row is not None and row["stage"] == "RESTORED" and row["closed_at"] is not None

        # Deleted again later: a new run, a new code.
        started = await deletions.start(account_id)
        assert started.started
        await inbox.next_code(account_id, after=1)
        await status_when(deletions, account_id, lambda s: s.verification is not None)
        again = await deletions.handle(account_id)
        await again.signal(AccountDeletion.cancel, CancelInput())
        assert (await again.result()).outcome is Stage.CANCELLED


@pytest.mark.parametrize(
    ("first", "then", "at", "outcome"),
    [
        ("restore", "cancel", WINDOW - timedelta(minutes=1), Stage.RESTORED),
        ("cancel", "restore", WINDOW - timedelta(minutes=1), Stage.CANCELLED),
        ("restore", "cancel", WINDOW + timedelta(minutes=1), Stage.DELETED),
    ],
    ids=["restore-first-before-the-end", "cancel-first-before-the-end", "both-after-the-end"],
)
async def test_cancel_and_restore_at_the_end_of_the_window(
    stack: Stack, env: WorkflowEnvironment, first: str, then: str, at: timedelta, outcome: Stage
) -> None:
    """Up to its end the first of the two is honoured and the other ignored; from its end,
    both are ignored and the purge goes on (held here by a legal hold, so that the run is
    still there to ask)."""
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    after_the_end = at > WINDOW
    if after_the_end:
        await pool.execute(
            "insert into legal_holds (account_id, product, reason, placed_at)"
            " values ($1, 'object_storage', 'litigation hold', now())",
            account_id,
        )
    asks = {
        "restore": lambda h: h.signal(AccountDeletion.restore, RestoreInput()),
        "cancel": lambda h: h.signal(AccountDeletion.cancel, CancelInput()),
    }
    async with stack.worker():
        handle = await into_cooling_off(stack, account_id, POLICY)
        await env.sleep(at)
        await asks[first](handle)
        await asks[then](handle)
        if after_the_end:
            await status_when(deletions, account_id, lambda s: s.stage is Stage.PURGE_BLOCKED)
            await pool.execute(
                "update legal_holds set lifted_at = now() where account_id = $1", account_id
            )
            await handle.signal(AccountDeletion.retry_failed_purges, RetryPurgesInput())
        await status_when(deletions, account_id, lambda s: s.stage.is_final, timeout=60)
        receipt = await handle.result()
    assert receipt.outcome is outcome
    expected = "deleted" if outcome is Stage.DELETED else "active"
    assert await account_status(pool, account_id) == expected


async def test_a_long_window_continues_as_new_keeping_its_end_and_its_notices(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    """Signals during the window grow its history; past `history_limit` it goes on in a new
    run that waits for the same end and does not send the start notice again."""
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    policy = DeletionPolicy(cooling_off=WINDOW, history_limit=200)
    async with stack.worker():
        handle = await into_cooling_off(stack, account_id, policy)
        first_run = (await handle.describe()).run_id
        ends_at = (await deletions.status(account_id)).purge_starts_at
        await notice(inbox, account_id, STARTED)
        for _ in range(80):
            await handle.signal(AccountDeletion.recheck_prerequisites, RecheckInput())
        async with asyncio.timeout(30):
            while (await handle.describe()).run_id == first_run:
                await asyncio.sleep(0.1)
        status = await status_when(deletions, account_id, lambda s: s.stage is Stage.COOLING_OFF)
        assert status.purge_starts_at == ends_at
        history = await handle.fetch_history()
        assert len(history.events) < 100

        await env.sleep(WINDOW - timedelta(hours=12))
        await notice(inbox, account_id, REMINDER)
        await env.sleep(timedelta(days=1))
        await status_when(deletions, account_id, lambda s: s.stage.is_final, timeout=60)
        receipt = await handle.result()
    assert receipt.outcome is Stage.DELETED
    assert len(notices(inbox, account_id, STARTED)) == 1
    assert len(notices(inbox, account_id, REMINDER)) == 1
    assert await account_status(pool, account_id) == "deleted"
    await record_history(stack.client, account_id, "cooling_off_continued_as_new")
