"""Cooling-off and restore at the edges, on the real dev server: the HTTP API (start with a
window, restore, 409 and 422), the client's updates (cancel and restore refuse each other, both
refused once the window is over), the verification page's button, and the operator CLI.

Real time here: windows that must end are seconds long; the 15-day one is for showing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from contract.cooling_off import COOLING_OFF_RULE
from contract.models import DeletionStatus
from contract.stages import Stage
from starter.errors import ActionNotAllowed
from tests.support import API_TOKEN, Stack, cli, new_account, wait_for_stage

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def route(account_id: str, verb: str = "") -> str:
    return f"/v1/accounts/{account_id}/deletion" + (f"/{verb}" if verb else "")


async def account_status(pool: asyncpg.Pool, account_id: str) -> str | None:
    status: str | None = await pool.fetchval(
        "select status from accounts where account_id = $1", account_id
    )
    return status


async def cooling_off_by_api(
    api: httpx.AsyncClient, stack: Stack, account_id: str, cooling_off: str = "P15D"
) -> tuple[str, DeletionStatus]:
    """Starts with a window through the API and confirms with the code; returns the page's
    path and the status in COOLING_OFF."""
    started = await api.post(route(account_id), headers=AUTH, json={"cooling_off": cooling_off})
    assert started.status_code == 202, started.text
    code = await stack.inbox.next_code(account_id)
    await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_VERIFICATION)
    checked = await api.post(route(account_id, "verification"), headers=AUTH, json={"code": code})
    assert checked.json()["outcome"] == "accepted", checked.text
    status = await wait_for_stage(stack.deletions, account_id, Stage.COOLING_OFF)
    page = "/" + started.json()["verification_url"].split("/", 3)[3]
    return page, status


async def test_restore_through_the_api_gives_the_account_back_then_answers_409(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    pool = stack.pool
    account_id = await new_account(pool)
    async with stack.worker():
        _, _ = await cooling_off_by_api(api, stack, account_id)
        shown = (await api.get(route(account_id), headers=AUTH)).json()
        assert shown["stage"] == "COOLING_OFF"
        starts = datetime.fromisoformat(shown["purge_starts_at"])
        assert abs(starts - datetime.now(UTC) - timedelta(days=15)) < timedelta(minutes=1)
        assert await account_status(pool, account_id) == "frozen"

        keyed = {**AUTH, "Idempotency-Key": f"restore-{account_id}"}
        first = await api.post(route(account_id, "restore"), headers=keyed)
        again = await api.post(route(account_id, "restore"), headers=keyed)
        assert first.status_code == again.status_code == 202, first.text
        assert first.json() == again.json()
        await wait_for_stage(stack.deletions, account_id, Stage.RESTORED)
        assert await account_status(pool, account_id) == "active"

        late = await api.post(route(account_id, "restore"), headers=AUTH)
        assert late.status_code == 409, late.text
        assert late.json()["error"] == "action_not_allowed"

        # The account can be deleted again: a new run.
        restarted = await api.post(route(account_id), headers=AUTH)
        assert restarted.status_code == 202 and restarted.json()["started"], restarted.text
        await stack.inbox.next_code(account_id, after=1)
        await stack.deletions.cancel(account_id)
        await wait_for_stage(stack.deletions, account_id, Stage.CANCELLED)


@pytest.mark.parametrize("value", ["P91D", "P1M", "P1Y", "15", "-P1D", "1 day", "P", "PT5"])
async def test_a_bad_cooling_off_gets_a_422_that_says_what_is_allowed(
    api: httpx.AsyncClient, stack: Stack, value: str
) -> None:
    account_id = await new_account(stack.pool)
    answer = await api.post(route(account_id), headers=AUTH, json={"cooling_off": value})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["error"] == "invalid_request"
    [error] = problem["errors"]
    assert error["field"] == "body.cooling_off"
    assert COOLING_OFF_RULE in error["message"]
    assert "P90D" in problem["detail"]
    assert await stack.pool.fetchval("select count(*) from deletions") == 0
    assert await stack.deletions.current_run_id(account_id) is None


async def test_cancel_and_restore_during_the_window_refuse_each_other(stack: Stack) -> None:
    """The first one accepted is honoured; the other is refused (409), not left hanging."""
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    cancelled, restored = await new_account(pool), await new_account(pool)
    async with stack.worker():
        for account_id in (cancelled, restored):
            await deletions.start(account_id, cooling_off=timedelta(hours=1))
            code = await inbox.next_code(account_id)
            await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
            await deletions.verify(account_id, code)
            await wait_for_stage(deletions, account_id, Stage.COOLING_OFF)

        await deletions.cancel(cancelled, "changed my mind")
        with pytest.raises(ActionNotAllowed, match="being cancelled"):
            await deletions.restore(cancelled)
        await deletions.restore(restored)
        with pytest.raises(ActionNotAllowed, match="being restored"):
            await deletions.cancel(restored)
        await wait_for_stage(deletions, cancelled, Stage.CANCELLED)
        await wait_for_stage(deletions, restored, Stage.RESTORED)
    assert (await deletions.receipt(cancelled)).reason == "changed my mind"
    assert (await deletions.receipt(restored)).reason == "restored by the user"
    assert await account_status(pool, cancelled) == "active"
    assert await account_status(pool, restored) == "active"


async def test_from_the_end_of_the_window_restore_and_cancel_are_refused(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """A legal hold keeps the run in PURGE_BLOCKED after a 2-second window: purging began."""
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    await pool.execute(
        "insert into legal_holds (account_id, product, reason, placed_at)"
        " values ($1, 'object_storage', 'litigation hold', now())",
        account_id,
    )
    async with stack.worker():
        await cooling_off_by_api(api, stack, account_id, "PT2S")
        await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        restore = await api.post(route(account_id, "restore"), headers=AUTH)
        cancel = await api.post(route(account_id, "cancel"), headers=AUTH)
        assert restore.status_code == cancel.status_code == 409, (restore.text, cancel.text)
        assert "PURGE_BLOCKED" in restore.json()["detail"]
        assert await account_status(pool, account_id) == "frozen"
        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        await wait_for_stage(deletions, account_id, Stage.DELETED)


async def test_the_page_shows_when_purging_starts_and_its_button_restores_the_account(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    account_id = await new_account(stack.pool)
    async with stack.worker():
        page, status = await cooling_off_by_api(api, stack, account_id)
        assert status.purge_starts_at is not None
        shown = await api.get(page)
        assert shown.status_code == 200
        assert f"{status.purge_starts_at:%d %B %Y at %H:%M} UTC" in shown.text
        assert "Restore my account" in shown.text
        assert f'action="{page}/restore"' in shown.text

        answer = await api.post(page + "/restore")
        assert answer.status_code == 303
        after = await api.get(answer.headers["location"])
        assert "Your account has been restored" in after.text
        assert "Restore my account" not in after.text
    assert (await stack.deletions.status(account_id)).stage is Stage.RESTORED
    assert await account_status(stack.pool, account_id) == "active"


async def test_operators_start_a_window_find_it_see_its_end_and_restore(
    stack: Stack, cli_env: dict[str, str]
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        bad = await cli(cli_env, "start", account_id, "--cooling-off", "P1M")
        assert bad[0] == 2 and COOLING_OFF_RULE in bad[2], bad
        assert await deletions.current_run_id(account_id) is None

        code, out, err = await cli(cli_env, "start", account_id, "--cooling-off", "P15D")
        assert code == 0, err
        received = await inbox.next_code(account_id)
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        assert (await cli(cli_env, "verify", account_id, received))[0] == 0
        status = await wait_for_stage(deletions, account_id, Stage.COOLING_OFF)
        assert status.purge_starts_at is not None

        (_, shown, _), (_, listed, _) = await asyncio.gather(
            cli(cli_env, "status", account_id),
            cli(cli_env, "list", "--stage", "cooling_off"),
        )
        assert f"purge starts {status.purge_starts_at:%Y-%m-%d %H:%M:%S} UTC" in shown
        [line] = [line for line in listed.splitlines() if line.startswith(account_id)]
        assert "COOLING_OFF" in line and "cooling-off: purge starts in 14d" in line

        code, out, err = await cli(cli_env, "restore", account_id, "--reason", "by phone")
        assert code == 0 and "restored" in out, err
        await wait_for_stage(deletions, account_id, Stage.RESTORED)
        assert (await deletions.receipt(account_id)).reason == "by phone"
        refused = await cli(cli_env, "restore", account_id)
        assert refused[0] == 1 and "RESTORED" in refused[2], refused
    assert await account_status(pool, account_id) == "active"


async def test_a_start_after_a_run_ended_in_its_window_resumes_that_window(stack: Stack) -> None:
    """An operator terminated the run during the cooling-off: a new start (whatever its policy)
    keeps the end the user was told, without a new code, and the account is still restorable."""
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        await deletions.start(account_id, cooling_off=timedelta(days=15))
        code = await inbox.next_code(account_id)
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        await deletions.verify(account_id, code)
        ends_at = (await wait_for_stage(deletions, account_id, Stage.COOLING_OFF)).purge_starts_at
        assert ends_at is not None
        await (await deletions.handle(account_id)).terminate("an operator's mistake")

        started = await deletions.start(account_id)
        assert started.started
        async with asyncio.timeout(30):
            while (status := await deletions.status(account_id)).purge_starts_at is None:
                await asyncio.sleep(0.1)
        assert status.stage is Stage.COOLING_OFF and status.purge_starts_at == ends_at
        assert await account_status(pool, account_id) == "frozen"
        assert len(inbox.codes(account_id)) == 1
        await deletions.restore(account_id)
        await wait_for_stage(deletions, account_id, Stage.RESTORED)
    assert await account_status(pool, account_id) == "active"
