"""The saga's edges: what arrives late, twice, in a storm, or after a run was cut short.

Each test drives real runs on the dev server with the real activities; where a race must be
made to happen, one activity is wrapped (registered under its real name) to wait first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from contract.models import AccountRef, DeletionPolicy, PlannedProduct, PrerequisiteReport
from contract.names import workflow_id_for
from contract.stages import Stage
from starter.errors import ActionNotAllowed, TooSoon
from tests.support import (
    Stack,
    code_hasher_for_tests,
    new_account,
    start_and_receive_code,
    wait_for_stage,
)
from worker import activities_for
from workflows.account_deletion import AccountDeletion

EAGER = DeletionPolicy(recheck_cooldown=timedelta(0), history_limit=200)
"""Rechecks at once after a check, and a history that continues as new after 200 events."""


def _replacing(activities: Sequence[Any], name: str, replacement: Any) -> list[Any]:
    assert any(a.__name__ == name for a in activities), name
    return [replacement if a.__name__ == name else a for a in activities]


@asynccontextmanager
async def _worker_with(stack: Stack, name: str, wrap: Callable[[Any], Any]) -> AsyncIterator[None]:
    """A worker whose activity `name` is `wrap(the real one)`, registered under its name."""
    real = activities_for(stack.pool, stack.inbox, code_hasher_for_tests(), purge_batch_size=500)
    original = next(a for a in real if a.__name__ == name)
    async with Worker(
        stack.client,
        task_queue=stack.task_queue,
        workflows=[AccountDeletion],
        activities=_replacing(real, name, wrap(original)),
    ):
        yield


async def _history_length(stack: Stack, account_id: str, run_id: str | None = None) -> int:
    handle = stack.client.get_workflow_handle(workflow_id_for(account_id), run_id=run_id)
    return len((await handle.fetch_history()).events)


async def _run_id(stack: Stack, account_id: str) -> str:
    return (await stack.client.get_workflow_handle(workflow_id_for(account_id)).describe()).run_id


async def _attach_unpaid_bill(stack: Stack, account_id: str) -> None:
    await stack.pool.execute(
        "insert into bills (bill_id, account_id, period, amount_cents, currency, status)"
        " values ($1, $2, '2026-10', 1234, 'EUR', 'unpaid')",
        f"B-{account_id}",
        account_id,
    )


async def _pay_bills(stack: Stack, account_id: str) -> None:
    await stack.pool.execute("update bills set status = 'paid' where account_id = $1", account_id)


async def _blocked_on_a_legal_hold(
    stack: Stack, account_id: str, policy: DeletionPolicy | None = None
) -> None:
    """Confirms a deletion whose object storage is under a legal hold: it waits PURGE_BLOCKED."""
    await stack.pool.execute(
        "insert into legal_holds (account_id, product, reason, placed_at)"
        " values ($1, 'object_storage', 'litigation hold', now())",
        account_id,
    )
    code = await start_and_receive_code(stack.deletions, stack.inbox, account_id, policy)
    await stack.deletions.submit_code(account_id, code)
    await wait_for_stage(stack.deletions, account_id, Stage.PURGE_BLOCKED)


async def _lift_legal_hold(stack: Stack, account_id: str) -> None:
    await stack.pool.execute(
        "update legal_holds set lifted_at = now() where account_id = $1", account_id
    )


# --- cancel answers the truth -----------------------------------------------------------------


async def test_a_cancel_once_the_run_decided_to_purge_is_refused_though_the_stage_is_freezing(
    stack: Stack,
) -> None:
    """Between the decision to purge and the PURGING stage the run plans its purge: a cancel
    arriving then is refused (409), not accepted and ignored."""
    planning, go_on = asyncio.Event(), asyncio.Event()

    def slow_plan(real: Callable[[], Awaitable[list[PlannedProduct]]]) -> Any:
        @activity.defn(name="plan_products")
        async def plan_products() -> list[PlannedProduct]:
            planning.set()
            await go_on.wait()
            return await real()

        return plan_products

    account_id = await new_account(stack.pool)
    async with _worker_with(stack, "plan_products", slow_plan):
        code = await start_and_receive_code(stack.deletions, stack.inbox, account_id)
        await stack.deletions.submit_code(account_id, code)
        await asyncio.wait_for(planning.wait(), timeout=30)
        assert (await stack.deletions.status(account_id)).stage is Stage.FREEZING
        cancelling = asyncio.create_task(stack.deletions.cancel(account_id, "changed my mind"))
        # A local activity longer than the workflow task timeout (10 s) lets the worker take
        # the update while the plan still runs: it is answered before the plan ends.
        await asyncio.wait([cancelling], timeout=20)
        assert cancelling.done(), "the cancel was not answered while the purge was planned"
        go_on.set()
        with pytest.raises(ActionNotAllowed, match="cannot be cancelled"):
            await cancelling
        receipt = await (await stack.deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED


async def test_an_accepted_cancel_is_always_honoured(stack: Stack) -> None:
    account_id = await new_account(stack.pool)
    async with stack.worker():
        await start_and_receive_code(stack.deletions, stack.inbox, account_id)
        await stack.deletions.cancel(account_id, "changed my mind")
        receipt = await (await stack.deletions.handle(account_id)).result()
        with pytest.raises(ActionNotAllowed, match="cannot be cancelled in stage CANCELLED"):
            await stack.deletions.cancel(account_id)  # asked again once the run has ended
    assert receipt.outcome is Stage.CANCELLED
    assert receipt.reason == "changed my mind"


async def test_a_cancel_during_the_first_check_ends_the_run_before_any_code_is_sent(
    stack: Stack,
) -> None:
    checking, go_on = asyncio.Event(), asyncio.Event()

    def slow_check(real: Callable[[AccountRef], Awaitable[PrerequisiteReport]]) -> Any:
        @activity.defn(name="check_prerequisites")
        async def check_prerequisites(ref: AccountRef) -> PrerequisiteReport:
            checking.set()
            await go_on.wait()
            return await real(ref)

        return check_prerequisites

    account_id = await new_account(stack.pool)
    async with _worker_with(stack, "check_prerequisites", slow_check):
        await stack.deletions.start(account_id)
        await asyncio.wait_for(checking.wait(), timeout=30)
        await stack.deletions.cancel(account_id)
        go_on.set()
        receipt = await (await stack.deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.CANCELLED
    assert stack.inbox.codes(account_id) == []


@pytest.mark.parametrize(
    "knob",
    ["recheck_interval", "tasks_deadline", "verification_deadline", "code_ttl"],
)
def test_a_policy_refuses_a_zero_or_negative_duration(knob: str) -> None:
    for value in (timedelta(0), timedelta(seconds=-1)):
        with pytest.raises(ValidationError, match=knob):
            DeletionPolicy.model_validate({knob: value})
    with pytest.raises(ValidationError, match=knob):
        DeletionPolicy.model_validate({knob: timedelta(days=10_000)})


# --- a Temporal cancel during the freeze ------------------------------------------------------


async def test_a_temporal_cancel_during_the_freeze_leaves_the_account_active(
    stack: Stack,
) -> None:
    """The unfreeze waits for the freeze: it cannot commit first and leave the account frozen."""
    freezing = asyncio.Event()

    def slow_freeze(real: Callable[[AccountRef], Awaitable[None]]) -> Any:
        @activity.defn(name="freeze_account")
        async def freeze_account(ref: AccountRef) -> None:
            freezing.set()
            await asyncio.sleep(3)
            await real(ref)

        return freeze_account

    account_id = await new_account(stack.pool)
    async with _worker_with(stack, "freeze_account", slow_freeze):
        code = await start_and_receive_code(stack.deletions, stack.inbox, account_id)
        await stack.deletions.submit_code(account_id, code)
        await asyncio.wait_for(freezing.wait(), timeout=30)
        handle = await stack.deletions.handle(account_id)
        await handle.cancel()
        receipt = await handle.result()
    assert receipt.outcome is Stage.CANCELLED
    status = await stack.pool.fetchval(
        "select status from accounts where account_id = $1", account_id
    )
    assert status == "active"


# --- a code that cannot be sent ---------------------------------------------------------------


async def test_an_account_without_contact_ends_cancelled_with_a_reason_not_failed(
    stack: Stack,
) -> None:
    account_id = await new_account(stack.pool)
    await stack.pool.execute(
        "update accounts set email = null, phone = null where account_id = $1", account_id
    )
    async with stack.worker():
        await stack.deletions.start(account_id)
        handle = await stack.deletions.handle(account_id)
        receipt = await handle.result()
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        with pytest.raises(ActionNotAllowed):
            await stack.deletions.resend_code(account_id)
        with pytest.raises(ActionNotAllowed):
            await stack.deletions.cancel(account_id)
    assert receipt.outcome is Stage.CANCELLED
    assert receipt.reason is not None and "neither email nor phone" in receipt.reason
    status = await stack.deletions.status(account_id)
    assert status.stage is Stage.CANCELLED


# --- bounded history --------------------------------------------------------------------------


async def test_three_hundred_recheck_requests_in_a_row_leave_the_history_small(
    stack: Stack,
) -> None:
    account_id = await new_account(stack.pool)
    await _attach_unpaid_bill(stack, account_id)
    async with stack.worker():
        await stack.deletions.start(account_id)
        await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_TASKS)
        refused = 0
        for _ in range(300):
            try:
                await stack.deletions.recheck(account_id)
            except TooSoon as too_soon:
                assert too_soon.retry_after is not None and 0 < too_soon.retry_after <= 10
                refused += 1
            except ActionNotAllowed:  # a check of an earlier request is running
                refused += 1
        assert refused >= 290
        assert await _history_length(stack, account_id) < 1000


async def test_a_long_wait_for_tasks_continues_as_new_and_keeps_its_state(
    stack: Stack,
) -> None:
    account_id = await new_account(stack.pool)
    await _attach_unpaid_bill(stack, account_id)
    async with stack.worker():
        await stack.deletions.start(account_id, policy=EAGER)
        before = await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_TASKS)
        first_run = await _run_id(stack, account_id)
        for _ in range(40):
            await stack.deletions.recheck(account_id)
            await asyncio.sleep(0.2)
            await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_TASKS)
            if await _run_id(stack, account_id) != first_run:
                break
        else:
            raise AssertionError("the wait never continued as new")
        assert await _history_length(stack, account_id, first_run) < 400
        after = await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_TASKS)
        assert after.deadline == before.deadline
        assert after.pending_tasks == before.pending_tasks

        await _pay_bills(stack, account_id)
        await stack.deletions.recheck(account_id)
        await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_VERIFICATION)
        await stack.deletions.submit_code(account_id, await stack.inbox.next_code(account_id))
        receipt = await (await stack.deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED
    assert receipt.requested_at < receipt.closed_at


async def test_a_long_purge_block_continues_as_new_and_finishes_every_product(
    stack: Stack,
) -> None:
    account_id = await new_account(stack.pool)
    async with stack.worker():
        await _blocked_on_a_legal_hold(stack, account_id, EAGER)
        first_run = await _run_id(stack, account_id)
        for _ in range(40):
            await stack.deletions.retry(account_id)
            await asyncio.sleep(0.2)
            await wait_for_stage(stack.deletions, account_id, Stage.PURGE_BLOCKED)
            if await _run_id(stack, account_id) != first_run:
                break
        else:
            raise AssertionError("the block never continued as new")
        blocked = await wait_for_stage(stack.deletions, account_id, Stage.PURGE_BLOCKED)
        assert [t.product for t in blocked.pending_tasks] == ["object_storage"]
        await _lift_legal_hold(stack, account_id)
        await stack.deletions.retry(account_id)
        receipt = await (await stack.deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED
    assert {p.product for p in receipt.products} == {p.product for p in blocked.products}


# --- a run cut short --------------------------------------------------------------------------


async def test_a_new_start_resumes_a_deletion_terminated_past_the_point_of_no_return(
    stack: Stack,
) -> None:
    account_id = await new_account(stack.pool)
    async with stack.worker():
        await _blocked_on_a_legal_hold(stack, account_id)
        await (await stack.deletions.handle(account_id)).terminate("operator error")
        with pytest.raises(ActionNotAllowed, match="purging had begun"):
            await stack.deletions.unfreeze(account_id, "ops-1")

        again = await stack.deletions.start(account_id)
        assert again.started
        await wait_for_stage(stack.deletions, account_id, Stage.PURGE_BLOCKED)
        await _lift_legal_hold(stack, account_id)
        await stack.deletions.retry(account_id)
        receipt = await (await stack.deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED
    assert len(stack.inbox.codes(account_id)) == 1  # resumed: no second code


async def _frozen_by_an_ended_run(stack: Stack, account_id: str) -> None:
    """What a run terminated after the freeze and before the purge leaves behind."""
    await stack.pool.execute(
        "update accounts set status = 'frozen', frozen_at = now() where account_id = $1",
        account_id,
    )
    await stack.pool.execute(
        "insert into deletions (workflow_id, account_id, run_id, stage, requested_by)"
        " values ($1, $2, 'terminated-run', 'FREEZING', 'console')",
        workflow_id_for(account_id),
        account_id,
    )


async def test_an_operator_unfreezes_an_account_whose_run_ended_before_purging(
    stack: Stack,
) -> None:
    account_id = await new_account(stack.pool)
    await _frozen_by_an_ended_run(stack, account_id)
    await stack.deletions.unfreeze(account_id, "ops-1")
    account = await stack.pool.fetchrow(
        "select status, frozen_at from accounts where account_id = $1", account_id
    )
    assert account is not None and account["status"] == "active"
    assert account["frozen_at"] is None
    audited = await stack.pool.fetchval(
        "select detail from audit_events where account_id = $1"
        " and kind = 'account_unfrozen_by_operator'",
        account_id,
    )
    assert audited == {"by": "ops-1"}
    with pytest.raises(ActionNotAllowed, match="not frozen"):
        await stack.deletions.unfreeze(account_id, "ops-1")


async def test_a_new_start_of_an_account_frozen_before_purging_freezes_again_and_deletes(
    stack: Stack,
) -> None:
    account_id = await new_account(stack.pool)
    await _frozen_by_an_ended_run(stack, account_id)
    async with stack.worker():
        assert (await stack.deletions.start(account_id)).started
        receipt = await (await stack.deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED
    assert stack.inbox.codes(account_id) == []  # confirmed in the run that froze it
