"""`Idempotency-Key` on every POST verb: a repeated request with the same key has the effect of
one and gets the same answer (a console retrying after a timeout pays no second attempt)."""

from __future__ import annotations

import httpx
import pytest

from contract.models import SubmitCodeInput
from contract.stages import Stage
from tests.support import API_TOKEN, Stack, new_account, start_and_receive_code, wait_for_stage
from workflows.account_deletion import AccountDeletion

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def key(value: str) -> dict[str, str]:
    return {**AUTH, "Idempotency-Key": value}


def wrong_for(code: str) -> str:
    return "000000" if code != "000000" else "111111"


async def test_an_update_id_already_completed_answers_its_result_again(stack: Stack) -> None:
    """What the API builds on, on the real dev server: Temporal dedupes an update by its id,
    and the second call gets the first one's result without running the handler again."""
    account_id = await new_account(stack.pool)
    async with stack.worker():
        code = await start_and_receive_code(stack.deletions, stack.inbox, account_id)
        handle = await stack.deletions.handle(account_id)
        wrong = SubmitCodeInput(code=wrong_for(code))
        first = await handle.execute_update(AccountDeletion.verify_code, wrong, id="attempt-1")
        again = await handle.execute_update(AccountDeletion.verify_code, wrong, id="attempt-1")
        assert first == again and first.attempts_left == 4
        status = await stack.deletions.status(account_id)
        assert status.verification is not None and status.verification.attempts_left == 4
        await stack.deletions.cancel(account_id)


async def test_a_repeated_verification_costs_one_attempt_and_answers_the_same(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    account_id = await new_account(stack.pool)
    route = f"/v1/accounts/{account_id}/deletion/verification"
    async with stack.worker():
        code = await start_and_receive_code(stack.deletions, stack.inbox, account_id)
        wrong = {"code": wrong_for(code)}
        answers = [(await api.post(route, json=wrong, headers=key("try-1"))) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all(a.json() == {"outcome": "wrong", "attempts_left": 4} for a in answers)
        status = await stack.deletions.status(account_id)
        assert status.verification is not None and status.verification.attempts_left == 4

        accepted = await api.post(route, json={"code": code}, headers=key("try-2"))
        assert accepted.json() == {"outcome": "accepted", "attempts_left": 4}
        await wait_for_stage(stack.deletions, account_id, Stage.DELETED)
        # The console's retry of the request that was answered: the same answer, no 409.
        repeated = await api.post(route, json={"code": code}, headers=key("try-2"))
        assert repeated.status_code == 200 and repeated.json() == accepted.json()
        without_key = await api.post(route, json={"code": code}, headers=AUTH)
        assert without_key.status_code == 409


async def test_a_repeated_registration_registers_once_and_answers_the_same(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    jane = {"user_name": "jane", "email": "jane@example.com", "phone": "+14155550123"}
    first = await api.post("/v1/accounts", json=jane, headers=key("register-jane"))
    again = await api.post("/v1/accounts", json=jane, headers=key("register-jane"))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert await stack.pool.fetchval("select count(*) from accounts") == 1

    other = {**jane, "user_name": "janet"}
    reused = await api.post("/v1/accounts", json=other, headers=key("register-jane"))
    assert reused.status_code == 422
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert reused.json()["error"] == "idempotency_key_reused"
    assert "jane@example.com" not in reused.text
    assert await stack.pool.fetchval("select count(*) from accounts") == 1


async def test_repeated_actions_with_a_key_answer_the_same(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    account_id = await new_account(stack.pool)
    base = f"/v1/accounts/{account_id}/deletion"
    async with stack.worker():
        started = [await api.post(base, headers=key("start-1")) for _ in range(2)]
        assert started[0].status_code == started[1].status_code == 202
        assert started[0].json() == started[1].json()
        assert started[0].json()["started"] is True
        await stack.inbox.next_code(account_id)
        await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_VERIFICATION)

        cancelled = await api.post(base + "/cancel", headers=key("cancel-1"))
        assert cancelled.status_code == 202
        await (await stack.deletions.handle(account_id)).result()
        again = await api.post(base + "/cancel", headers=key("cancel-1"))
        assert again.status_code == 202 and again.json() == cancelled.json()
        # A new key is a new request: now it does not fit the stage.
        fresh = await api.post(base + "/cancel", headers=key("cancel-2"))
        assert fresh.status_code == 409


@pytest.mark.parametrize("bad", ["", "x" * 256, "tab\there", "é-key"])
async def test_a_malformed_key_is_a_422_problem(
    api: httpx.AsyncClient, stack: Stack, bad: str
) -> None:
    jane = {"user_name": "jane", "email": "jane@example.com", "phone": "+14155550123"}
    response = await api.post(
        "/v1/accounts",
        json=jane,
        headers={
            b"Authorization": AUTH["Authorization"].encode(),
            b"Idempotency-Key": bad.encode(),
        },
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["error"] == "invalid_idempotency_key"
    assert await stack.pool.fetchval("select count(*) from accounts") == 0
