"""The deletion saga end to end, on a real Temporal dev server and a real PostgreSQL."""

from __future__ import annotations

import asyncpg
from temporalio.client import Client

from activities.registration import IdentifierTaken, RegistrationRequest, register_account
from starter.client import DeletionClient
from tests.support import Inbox, new_account, running_worker, wait_for_stage
from workflows.models import Stage


async def test_a_clean_account_is_deleted_and_its_identifiers_become_free_only_then(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    inbox = Inbox()
    deletions = DeletionClient(client, pool, task_queue)
    account_id = await new_account(pool, "cleanuser")
    async with running_worker(client, pool, task_queue, inbox):
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
    assert receipt.outcome is Stage.DELETED
    rows = {p.product: p.rows for p in receipt.products}
    assert rows["object_storage"] == 121
    assert rows["compute"] == 1
    assert rows["billing"] == 1
    assert all(p.verified_clean for p in receipt.products)
    assert await pool.fetchval("select count(*) from storage_objects") == 0
    bill = await pool.fetchrow("select billed_to, anonymised_at from bills")
    assert bill["billed_to"] is None and bill["anonymised_at"] is not None
    assert receipt.identifiers_released_at is not None
    last_purge = max(p.completed_at for p in receipt.products)
    assert receipt.identifiers_released_at >= last_purge
    again_registered = await register_account(
        pool,
        RegistrationRequest(user_name="cleanuser", email="cleanuser@example.com", phone="+14155550000"),
    )
    assert again_registered.account_id != account_id
    status = await deletions.status(account_id)
    assert status.stage is Stage.DELETED


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
