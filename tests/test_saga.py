"""The deletion saga end to end, on a real Temporal dev server and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType

from accounts.registration import IdentifierTaken, RegistrationRequest, register_account
from contract.models import (
    DeletionPolicy,
    DeletionRequest,
    DeletionStatus,
    PurgeState,
    TaskCategory,
    VerificationOutcome,
)
from contract.names import ACCOUNT_ID, DELETION_STAGE, workflow_id_for
from contract.stages import Stage
from starter.client import DeletionClient
from starter.errors import ActionNotAllowed
from tests.support import (
    Stack,
    attach_every_prerequisite,
    new_account,
    record_history,
    resolve_every_prerequisite,
    start_and_receive_code,
    wait_for_stage,
)
from workflows.account_deletion import AccountDeletion
from workflows.patches import CURRENT_SEQUENCE

EAGER_RECHECKS = DeletionPolicy(recheck_cooldown=timedelta(0))


async def test_a_clean_account_is_deleted_and_its_identifiers_become_free_only_then(
    stack: Stack,
) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool, "cleanuser")
    async with stack.worker():
        started = await deletions.start(account_id)
        assert started.started
        code = await inbox.next_code(account_id)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        assert status.verification is not None
        assert status.verification.attempts_left == 5
        again = await deletions.start(account_id)
        assert not again.started and again.run_id == started.run_id
        await deletions.submit_code(account_id, code)
        receipt = await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "clean_deletion")
    assert receipt.outcome is Stage.DELETED
    rows = {p.product: p.rows for p in receipt.products}
    assert rows["object_storage"] == 121
    assert rows["compute"] == 1
    assert rows["billing"] == 1
    assert all(p.verified_clean for p in receipt.products)
    assert await pool.fetchval("select count(*) from storage_objects") == 0
    bill = await pool.fetchrow("select billed_to, anonymised_at from bills")
    assert bill is not None
    assert bill["billed_to"] is None and bill["anonymised_at"] is not None
    assert receipt.identifiers_released_at is not None
    last_purge = max(p.completed_at for p in receipt.products)
    assert receipt.identifiers_released_at >= last_purge
    again_registered = await register_account(
        pool,
        RegistrationRequest(
            user_name="cleanuser", email="cleanuser@example.com", phone="+14155550000"
        ),
    )
    assert again_registered.account_id != account_id
    status = await deletions.status(account_id)
    assert status.stage is Stage.DELETED
    described = await (await deletions.handle(account_id)).describe()
    assert described.typed_search_attributes.get(DELETION_STAGE) == "DELETED"
    assert await described.static_summary() == (
        f"Deletion of account {account_id}, requested by console"
    )
    details = await described.static_details()
    assert details is not None and "point of no return" in details
    assert "@" not in details
    assert described.typed_search_attributes.get(ACCOUNT_ID) == account_id
    row = await pool.fetchrow(
        "select stage, closed_at, receipt from deletions where account_id = $1", account_id
    )
    assert row is not None and row["stage"] == "DELETED" and row["closed_at"] is not None
    assert row["receipt"]["products"] == receipt.model_dump(mode="json")["products"]


async def test_identifiers_are_held_while_purging(pool: asyncpg.Pool) -> None:
    account_id = await new_account(pool, "heldname")
    await pool.execute("update accounts set status = 'frozen' where account_id = $1", account_id)
    try:
        await register_account(
            pool,
            RegistrationRequest(user_name="heldname", email="x@example.com", phone="+14155550001"),
        )
    except IdentifierTaken as taken:
        assert [k.value for k in taken.kinds] == ["user_name"]
    else:
        raise AssertionError("a frozen account's user name was free")


async def test_a_blocked_account_lists_every_category_and_proceeds_once_resolved(
    stack: Stack,
) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    await attach_every_prerequisite(pool, account_id)
    async with stack.worker():
        # Rechecks asked at once after a check (the product refuses them for a while).
        await deletions.start(account_id, policy=EAGER_RECHECKS)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_TASKS)
        categories = {task.category for task in status.pending_tasks}
        assert categories == TaskCategory.of_prerequisites()
        running = [t for t in status.pending_tasks if t.product == "compute"]
        assert running and f"i-live-{account_id}" in running[0].item
        assert inbox.messages == []  # no code is sent while tasks are pending

        await deletions.recheck(account_id)  # nothing resolved yet: still waiting
        await asyncio.sleep(0.5)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_TASKS)
        assert len(status.pending_tasks) == 8

        await resolve_every_prerequisite(pool, account_id)
        await deletions.recheck(account_id)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        assert status.pending_tasks == []
        await deletions.submit_code(account_id, await inbox.next_code(account_id))
        receipt = await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "blocked_then_resolved")
    assert receipt.outcome is Stage.DELETED


async def test_wrong_codes_count_down_then_the_code_is_dead_until_a_resend(stack: Stack) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    policy = DeletionPolicy(resend_interval=timedelta(seconds=0))
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id, policy)
        wrong = "999999" if code != "999999" else "888888"
        for left in (4, 3, 2, 1):
            status = await submit_and_wait(deletions, account_id, wrong)
            assert status.verification is not None
            assert status.verification.attempts_left == left
            assert status.verification.last_outcome is VerificationOutcome.WRONG
        status = await submit_and_wait(deletions, account_id, wrong)
        assert status.verification is not None
        assert status.verification.attempts_left == 0
        assert status.verification.last_outcome is VerificationOutcome.LOCKED
        # Even the right code no longer opens a dead code.
        status = await submit_and_wait(deletions, account_id, code, same_attempts=True)
        assert status.stage is Stage.AWAITING_VERIFICATION
        assert status.verification is not None
        assert status.verification.last_outcome is VerificationOutcome.LOCKED

        await deletions.resend_code(account_id)
        fresh = await inbox.next_code(account_id, after=1)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        await deletions.submit_code(account_id, code)  # the old code: replaced
        status = await submit_and_wait(deletions, account_id, fresh, same_attempts=True)
        receipt = await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "wrong_codes_then_resend")
    assert receipt.outcome is Stage.DELETED
    outcomes = await pool.fetch("select outcome from verification_attempts order by checked_at")
    # The attempts are gone with the account's sign-in data; the audit keeps the stages.
    assert outcomes == []
    stages = await pool.fetch(
        "select detail->>'stage' as stage from audit_events"
        " where account_id = $1 and kind = 'stage_changed' order by event_id",
        account_id,
    )
    assert [r["stage"] for r in stages][-3:] == ["FREEZING", "PURGING", "RELEASING_IDENTIFIERS"]


async def test_cancel_after_the_freeze_unfreezes_the_account(stack: Stack) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        # Hold the account row so that the freeze waits: the run sits in FREEZING.
        async with pool.acquire() as blocker:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute(
                "select 1 from accounts where account_id = $1 for no key update", account_id
            )
            await deletions.submit_code(account_id, code)
            await wait_for_stage(deletions, account_id, Stage.FREEZING)
            await deletions.cancel(account_id, "changed my mind")
            await tx.rollback()
        receipt = await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "cancel_after_freeze")
    assert receipt.outcome is Stage.CANCELLED
    assert receipt.reason == "changed my mind"
    assert (
        await pool.fetchval("select status from accounts where account_id = $1", account_id)
        == "active"
    )
    kinds = [
        r["kind"]
        for r in await pool.fetch(
            "select kind from audit_events where account_id = $1 and kind like 'account_%'"
            " order by event_id",
            account_id,
        )
    ]
    assert kinds == ["account_frozen", "account_unfrozen"]
    held = await pool.fetchval(
        "select count(*) from identifier_claims where account_id = $1 and released_at is null",
        account_id,
    )
    assert held == 3
    row = await pool.fetchrow(
        "select stage, closed_at from deletions where account_id = $1", account_id
    )
    assert row is not None
    assert row["stage"] == "CANCELLED" and row["closed_at"] is not None


async def test_cancel_while_awaiting_the_code_ends_the_run_and_keeps_the_account(
    stack: Stack,
) -> None:
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        await deletions.start(account_id)
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        await deletions.cancel(account_id)
        receipt = await (await deletions.handle(account_id)).result()
        assert receipt.outcome is Stage.CANCELLED
        with pytest.raises(ActionNotAllowed):
            await deletions.cancel(account_id)
        # A new deletion can be started after a cancelled one.
        again = await deletions.start(account_id)
        assert again.started
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        await deletions.cancel(account_id)
        await (await deletions.handle(account_id)).result()
    assert (
        await pool.fetchval("select status from accounts where account_id = $1", account_id)
        == "active"
    )


async def test_a_resource_created_after_the_first_check_is_caught_after_the_freeze(
    stack: Stack,
) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id, EAGER_RECHECKS)
        await pool.execute(
            "insert into db_instances values ($1, $2, 'postgres', 'orders', 'available')",
            f"db-{account_id}",
            account_id,
        )
        await deletions.submit_code(account_id, code)
        status = await wait_for_stage(deletions, account_id, Stage.AWAITING_TASKS)
        assert [t.item for t in status.pending_tasks] == [
            f"Relational Databases: database instance db-{account_id} (postgres, orders)"
        ]
        assert status.verified
        assert (
            await pool.fetchval("select status from accounts where account_id = $1", account_id)
            == "active"
        )
        await pool.execute(
            "update db_instances set state = 'deleted' where account_id = $1", account_id
        )
        await deletions.recheck(account_id)
        receipt = await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "late_resource_caught")
    assert receipt.outcome is Stage.DELETED
    assert len(inbox.codes(account_id)) == 1  # the confirmation stays valid for the run
    assert {p.product: p.rows for p in receipt.products}["databases"] == 1


async def test_a_legal_hold_blocks_the_purge_until_lifted_then_only_that_product_is_retried(
    stack: Stack,
) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'object_storage',"
        " 'Litigation hold LH-7 placed by Legal')",
        account_id,
    )
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        status = await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        [task] = status.pending_tasks
        assert task.category is TaskCategory.PURGE_FAILURE
        assert task.product == "object_storage"
        assert "Litigation hold LH-7 placed by Legal" in task.message
        states = {p.product: p.state for p in status.products}
        assert states.pop("object_storage") is PurgeState.FAILED
        assert set(states.values()) == {PurgeState.SUCCEEDED}
        assert not status.identifiers_released
        held = await pool.fetchval(
            "select count(*) from identifier_claims where account_id = $1 and released_at is null",
            account_id,
        )
        assert held == 3
        assert (
            await pool.fetchval("select status from accounts where account_id = $1", account_id)
            == "frozen"
        )
        with pytest.raises(ActionNotAllowed):
            await deletions.cancel(account_id)

        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        receipt = await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "legal_hold_retried")
    assert receipt.outcome is Stage.DELETED
    status = await deletions.status(account_id)
    attempts = {p.product: p.attempts for p in status.products}
    assert attempts.pop("object_storage") == 2
    assert set(attempts.values()) == {1}
    purged = await pool.fetch(
        "select detail->>'product' as product from audit_events"
        " where account_id = $1 and kind = 'product_purged'",
        account_id,
    )
    assert sorted(r["product"] for r in purged) == sorted(p.product for p in receipt.products)


async def submit_and_wait(
    deletions: DeletionClient, account_id: str, code: str, *, same_attempts: bool = False
) -> DeletionStatus:
    """Submits a code and waits until the run has acted on it."""
    before = await deletions.status(account_id)
    await deletions.submit_code(account_id, code)
    async with asyncio.timeout(20):
        while True:
            await asyncio.sleep(0.1)
            status = await deletions.status(account_id)
            if status.stage is not Stage.AWAITING_VERIFICATION:
                return status
            if same_attempts:
                # A refused code leaves the attempts as they were: give the run a moment.
                await asyncio.sleep(1.0)
                return await deletions.status(account_id)
            assert status.verification is not None and before.verification is not None
            if status.verification.attempts_left != before.verification.attempts_left:
                return status


async def test_an_operator_cancel_through_temporal_before_purging_ends_the_run_cancelled(
    stack: Stack,
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        await start_and_receive_code(deletions, inbox, account_id)
        handle = await deletions.handle(account_id)
        await handle.cancel()
        receipt = await handle.result()
    assert receipt.outcome is Stage.CANCELLED
    assert receipt.reason == "cancelled by an operator"
    assert (await deletions.status(account_id)).stage is Stage.CANCELLED


async def test_an_operator_cancel_through_temporal_after_purging_began_is_refused(
    stack: Stack,
) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'dns', 'Hold H-1')",
        account_id,
    )
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        handle = await deletions.handle(account_id)
        await handle.cancel()
        await asyncio.sleep(1)
        assert (await deletions.status(account_id)).stage is Stage.PURGE_BLOCKED
        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        receipt = await handle.result()
        await record_history(client, account_id, "temporal_cancel_refused_after_purge")
    assert receipt.outcome is Stage.DELETED


async def test_concurrent_code_updates_are_answered_one_by_one_without_a_race(stack: Stack) -> None:
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        wrong = [c for c in ("111111", "222222", "333333", "444444") if c != code][:3]
        answers = await asyncio.gather(*(deletions.verify(account_id, w) for w in wrong))
        assert sorted(a.attempts_left for a in answers) == [2, 3, 4]
        assert {a.outcome for a in answers} == {VerificationOutcome.WRONG}
        accepted = await deletions.verify(account_id, code)
        assert accepted.outcome is VerificationOutcome.ACCEPTED
        with pytest.raises(ActionNotAllowed):
            await deletions.verify(account_id, code)
        receipt = await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "verified_by_update")
    assert receipt.outcome is Stage.DELETED


async def test_the_temporal_ui_shows_the_stage_and_the_blocked_product_as_current_details(
    stack: Stack,
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'cdn', 'Hold H-9')",
        account_id,
    )
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.verify(account_id, code)
        await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        handle = await deletions.handle(account_id)
        metadata = await handle.query("__temporal_workflow_metadata")
        details = metadata.current_details
        assert details.startswith("**PURGE_BLOCKED**")
        assert "purge_failure: purge of cdn" in details
        assert "- cdn: failed (cdn refuses to purge: Hold H-9)" in details
        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        await handle.result()


async def test_a_clean_deletion_upserts_a_search_attribute_only_when_its_value_changes(
    stack: Stack,
) -> None:
    """Temporal's work per deletion: the start sets `AccountId` and the first stage, each later
    stage is one upsert, and the run takes its changes under one patch marker."""
    client, pool, inbox, deletions = stack.client, stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        await (await deletions.handle(account_id)).result()
        await record_history(client, account_id, "clean_deletion_current_sequence")
    history = await (await deletions.handle(account_id)).fetch_history()
    upserts: list[tuple[str, str]] = []
    patches: list[str] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            upserts += [
                (name, json.loads(payload.data))
                for name, payload in fields.indexed_fields.items()
                if name != "TemporalChangeVersion"
            ]
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                patches.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    assert patches == [CURRENT_SEQUENCE]
    assert upserts == [
        ("DeletionStage", stage.value)
        for stage in (
            Stage.AWAITING_VERIFICATION,
            Stage.FREEZING,
            Stage.PURGING,
            Stage.RELEASING_IDENTIFIERS,
            Stage.DELETED,
        )
    ]
    described = await (await deletions.handle(account_id)).describe()
    assert described.typed_search_attributes.get(ACCOUNT_ID) == account_id


async def test_a_run_started_without_search_attributes_sets_them_itself(stack: Stack) -> None:
    """An operator may start a run by hand (`temporal workflow start`): the run still shows its
    account and stage."""
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        await stack.client.start_workflow(
            AccountDeletion.run,
            DeletionRequest(account_id=account_id, requested_by="operator"),
            id=workflow_id_for(account_id),
            task_queue=stack.task_queue,
        )
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        described = await (await deletions.handle(account_id)).describe()
        assert described.typed_search_attributes.get(ACCOUNT_ID) == account_id
        assert described.typed_search_attributes.get(DELETION_STAGE) == "AWAITING_VERIFICATION"
        await deletions.cancel(account_id, reason="test over")
