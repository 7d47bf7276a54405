"""The `manual` driver: a product a person purges (tapes in a vault, a partner without an API).
The run shows a pending task with the product's instructions and waits in PURGING, identifiers
held, until an operator confirms through the API or the CLI; who confirmed is in the audit log
and the receipt. Runs on the real Temporal dev server and PostgreSQL, with a PRODUCTS_FILE."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from contract.models import PurgeState, TaskCategory
from contract.names import DELETION_WAITING_ON, WAITING_ON_PEOPLE, workflow_id_for
from contract.stages import Stage
from registry.catalog import Catalog, load_catalog
from tests.support import (
    Stack,
    cli,
    new_account,
    record_history,
    start_and_receive_code,
    wait_for_stage,
)

AUTH = {"Authorization": "Bearer test-token-0123456789"}
INSTRUCTIONS = "Pull the account's tapes from vault B, shred them, file the certificate."


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    products = tmp_path / "products.toml"
    products.write_text(
        f"""
[[product]]
name = "tape_archive"
title = "Tape archive"
driver = "manual"
instructions = "{INSTRUCTIONS}"
""",
        encoding="utf-8",
    )
    return load_catalog(products)


async def _awaiting_confirmation(stack: Stack, account_id: str, code: str | None = None) -> None:
    """Starts the deletion (unless its `code` came already), verifies, and waits until the
    manual product awaits confirmation."""
    code = code or await start_and_receive_code(stack.deletions, stack.inbox, account_id)
    await stack.deletions.verify(account_id, code)
    async with asyncio.timeout(30):
        while True:
            status = await stack.deletions.status(account_id)
            tape = next((p for p in status.products if p.product == "tape_archive"), None)
            if tape is not None and tape.state is PurgeState.AWAITING_CONFIRMATION:
                return
            await asyncio.sleep(0.1)


async def test_a_manual_product_waits_on_people_until_an_operator_confirms_through_the_api(
    stack: Stack,
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    client: Client,
    catalog: Catalog,
) -> None:
    account_id = await new_account(pool)
    async with stack.worker(catalog=catalog):
        await _awaiting_confirmation(stack, account_id)
        # Every other product is purged meanwhile; the run stays in PURGING, showing the task.
        status = await wait_for_stage(stack.deletions, account_id, Stage.PURGING)
        assert [t.category for t in status.pending_tasks] == [TaskCategory.MANUAL_PURGE]
        task = status.pending_tasks[0]
        assert task.product == "tape_archive"
        assert task.message == INSTRUCTIONS
        assert "confirm-purge" in task.resolution
        assert not status.identifiers_released
        described = await client.get_workflow_handle(workflow_id_for(account_id)).describe()
        assert described.typed_search_attributes.get(DELETION_WAITING_ON) == WAITING_ON_PEOPLE
        # The user sees what to expect, not the operators' instructions.
        shown = (await api.get(f"/v1/accounts/{account_id}/deletion", headers=AUTH)).json()
        assert INSTRUCTIONS not in str(shown)
        assert [t["category"] for t in shown["pending_tasks"]] == ["manual_purge"]
        assert "by hand" in shown["pending_tasks"][0]["message"]
        claims = await pool.fetchval(
            "select count(*) from identifier_claims where account_id = $1 and released_at is null",
            account_id,
        )
        assert claims == 3, "identifiers are released before the manual product is confirmed"

        confirm = f"/v1/accounts/{account_id}/deletion/products/tape_archive/confirm"
        answer = await api.post(confirm, json={"confirmed_by": "ops.jane"}, headers=AUTH)
        assert answer.status_code == 202, answer.text
        status = await wait_for_stage(stack.deletions, account_id, Stage.DELETED)
        await record_history(client, account_id, "manual_product_confirmed")
        again = await api.post(confirm, json={"confirmed_by": "ops.jane"}, headers=AUTH)
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"

    receipt = await stack.deletions.receipt(account_id)
    tape = next(p for p in receipt.products if p.product == "tape_archive")
    assert tape.driver.value == "manual"
    assert tape.confirmed_by == "ops.jane"
    assert receipt.identifiers_released_at is not None
    described = await client.get_workflow_handle(workflow_id_for(account_id)).describe()
    assert described.typed_search_attributes.get(DELETION_WAITING_ON) is None
    audited = await pool.fetchrow(
        "select detail from audit_events where account_id = $1 and kind = 'product_purged'"
        " and detail->>'product' = 'tape_archive'",
        account_id,
    )
    assert audited is not None
    assert audited["detail"]["confirmed_by"] == "ops.jane"
    assert audited["detail"]["driver"] == "manual"
    recorded = await pool.fetchrow(
        "select driver, confirmed_by from product_purges where account_id = $1"
        " and product = 'tape_archive'",
        account_id,
    )
    assert dict(recorded or {}) == {"driver": "manual", "confirmed_by": "ops.jane"}


async def test_confirmations_that_cannot_count_are_refused_and_change_nothing(
    stack: Stack, api: httpx.AsyncClient, pool: asyncpg.Pool, catalog: Catalog
) -> None:
    account_id = await new_account(pool)
    base = f"/v1/accounts/{account_id}/deletion/products"
    operator = {"confirmed_by": "ops.jane"}
    async with stack.worker(catalog=catalog):
        code = await start_and_receive_code(stack.deletions, stack.inbox, account_id)
        # Before purging: nothing awaits a confirmation.
        early = await api.post(f"{base}/tape_archive/confirm", json=operator, headers=AUTH)
        assert early.status_code == 409
        await _awaiting_confirmation(stack, account_id, code)
        # A built-in product, or one this deletion does not have, is not confirmed by a person.
        for product in ("compute", "no_such_product"):
            refused = await api.post(f"{base}/{product}/confirm", json=operator, headers=AUTH)
            assert refused.status_code == 404, refused.text
            assert refused.json()["error"] == "product_not_found"
        # Malformed: an operator id that is an email, an empty one, a product name with a slash.
        for body in ({"confirmed_by": "jane@example.com"}, {"confirmed_by": ""}, {}):
            bad = await api.post(f"{base}/tape_archive/confirm", json=body, headers=AUTH)
            assert bad.status_code == 422
            assert "jane@example.com" not in bad.text
        bad_name = await api.post(f"{base}/Tape-Archive/confirm", json=operator, headers=AUTH)
        assert bad_name.status_code == 422
        unauthenticated = await api.post(f"{base}/tape_archive/confirm", json=operator)
        assert unauthenticated.status_code == 401
        status = await stack.deletions.status(account_id)
        assert status.stage is Stage.PURGING
        tape = next(p for p in status.products if p.product == "tape_archive")
        assert tape.state is PurgeState.AWAITING_CONFIRMATION
        assert (
            await pool.fetchval(
                "select count(*) from product_purges where account_id = $1"
                " and product = 'tape_archive'",
                account_id,
            )
            == 0
        )
        # The same request twice with one Idempotency-Key has the effect of one.
        keyed = {**AUTH, "Idempotency-Key": "confirm-tapes-1"}
        first = await api.post(f"{base}/tape_archive/confirm", json=operator, headers=keyed)
        second = await api.post(f"{base}/tape_archive/confirm", json=operator, headers=keyed)
        assert (first.status_code, second.status_code) == (202, 202)
        await wait_for_stage(stack.deletions, account_id, Stage.DELETED)


async def test_an_operator_confirms_with_the_cli_and_is_named_in_the_receipt(
    stack: Stack,
    pool: asyncpg.Pool,
    catalog: Catalog,
    cli_env: dict[str, str],
) -> None:
    account_id = await new_account(pool)
    async with stack.worker(catalog=catalog):
        await _awaiting_confirmation(stack, account_id)
        code, out, err = await cli(cli_env, "list", "--stage", "PURGING")
        assert code == 0, err
        line = next(line for line in out.splitlines() if line.startswith(account_id))
        assert "waiting on people: manual purge of tape_archive" in line
        code, out, err = await cli(cli_env, "status", account_id)
        assert code == 0, err
        assert "waiting on people (confirm-purge) since" in out
        assert INSTRUCTIONS in out

        code, out, err = await cli(cli_env, "confirm-purge", account_id, "compute", "--by", "ops")
        assert code == 1, (out, err)
        assert "not a manual product" in err
        code, out, err = await cli(
            cli_env, "confirm-purge", account_id, "tape_archive", "--by", "a@b.c"
        )
        assert code == 2
        assert "operator id" in err
        code, out, err = await cli(
            cli_env, "confirm-purge", account_id, "tape_archive", "--by", "ops.kim"
        )
        assert code == 0, err
        assert "confirmed by ops.kim" in out
        await wait_for_stage(stack.deletions, account_id, Stage.DELETED)

    receipt = await stack.deletions.receipt(account_id)
    assert {p.product: p.confirmed_by for p in receipt.products}["tape_archive"] == "ops.kim"


async def test_a_failed_purge_shows_beside_the_manual_task_and_waits_for_a_retry_after_it(
    stack: Stack, pool: asyncpg.Pool, catalog: Catalog
) -> None:
    """While people are awaited, a product that fails shows at once; once the manual product
    is confirmed the run waits in PURGE_BLOCKED for the fix and the retry, which purges only
    the failed product."""
    account_id = await new_account(pool)
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'dns', 'Hold H-7')",
        account_id,
    )
    async with stack.worker(catalog=catalog):
        await _awaiting_confirmation(stack, account_id)
        async with asyncio.timeout(30):
            while True:
                status = await stack.deletions.status(account_id)
                if len(status.pending_tasks) == 2:
                    break
                await asyncio.sleep(0.1)
        assert status.stage is Stage.PURGING
        assert {(t.category, t.product) for t in status.pending_tasks} == {
            (TaskCategory.PURGE_FAILURE, "dns"),
            (TaskCategory.MANUAL_PURGE, "tape_archive"),
        }
        await stack.deletions.confirm_purge(account_id, "tape_archive", "ops.jane")
        blocked = await wait_for_stage(stack.deletions, account_id, Stage.PURGE_BLOCKED)
        assert [(t.category, t.product) for t in blocked.pending_tasks] == [
            (TaskCategory.PURGE_FAILURE, "dns")
        ]
        tape = next(p for p in blocked.products if p.product == "tape_archive")
        assert tape.state is PurgeState.SUCCEEDED
        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await stack.deletions.retry(account_id)
        await wait_for_stage(stack.deletions, account_id, Stage.DELETED)
    receipt = await stack.deletions.receipt(account_id)
    assert {p.product: p.confirmed_by for p in receipt.products}["tape_archive"] == "ops.jane"
    assert (
        await pool.fetchval(
            "select count(*) from audit_events where account_id = $1 and kind = 'product_purged'"
            " and detail->>'product' = 'tape_archive'",
            account_id,
        )
        == 1
    ), "the retry must not confirm the manual product again"
