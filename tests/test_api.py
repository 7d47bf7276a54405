"""The HTTP API as the console backend meets it: auth, registration, errors, the deletion routes."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from contract.stages import Stage
from core.config import Settings
from service.api import create_app
from store.db import create_pool
from tests.support import (
    API_TOKEN,
    Stack,
    in_process_api,
    new_account,
    wait_for_stage,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
"""The `api` fixture's token (conftest.py)."""


JANE = {"user_name": "jane", "email": "Jane@Example.com", "phone": "+1 415 555 0123"}


async def test_registration_needs_the_bearer_token(api: httpx.AsyncClient) -> None:
    missing = await api.post("/v1/accounts", json=JANE)
    wrong = await api.post("/v1/accounts", json=JANE, headers={"Authorization": "Bearer nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["error"] == "unauthorized"


async def test_registration_answers_201_then_409_naming_the_identifier(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    created = await api.post("/v1/accounts", json=JANE, headers=AUTH)
    assert created.status_code == 201
    body = created.json()
    assert body["user_name"] == "jane"
    assert body["email_masked"] == "j***@example.com"
    again = await api.post(
        "/v1/accounts",
        json={"user_name": "other", "email": "JANE@example.com", "phone": "+14155550999"},
        headers=AUTH,
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json() == {
        "type": "/problems/identifier_taken",
        "title": "An identifier is held by another account",
        "status": 409,
        "detail": "the email address is already held by another account",
        "error": "identifier_taken",
    }
    assert await pool.fetchval("select count(*) from accounts") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"user_name": "jane", "email": "not-an-email", "phone": "+14155550123"},
        {"user_name": "jane", "email": "jane@example.com"},
        {"user_name": 42, "email": "jane@example.com", "phone": "+14155550123"},
        {**JANE, "is_admin": True},
        {
            "user_name": "jane'; drop table accounts; --",
            "email": "j@example.com",
            "phone": "+14155550123",
        },
    ],
)
async def test_malformed_registrations_get_422_and_change_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, body: dict[str, object]
) -> None:
    response = await api.post("/v1/accounts", json=body, headers=AUTH)
    assert response.status_code == 422
    assert await pool.fetchval("select count(*) from accounts") == 0


async def test_oversized_bodies_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/accounts",
        content=b"{" + b" " * 20000 + b"}",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_unknown_account_is_404_and_malformed_id_is_422(api: httpx.AsyncClient) -> None:
    unknown = await api.get("/v1/accounts/acct-doesnotexist/deletion", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "account_not_found"
    malformed = await api.post("/v1/accounts/bad%20id%3B/deletion", headers=AUTH)
    assert malformed.status_code == 422


async def test_openapi_document_lists_the_public_routes(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    for path in [
        "/v1/accounts",
        "/v1/accounts/{account_id}/deletion",
        "/v1/accounts/{account_id}/deletion/verification",
        "/v1/accounts/{account_id}/deletion/recheck",
        "/v1/accounts/{account_id}/deletion/resend-code",
        "/v1/accounts/{account_id}/deletion/retry",
        "/v1/accounts/{account_id}/deletion/cancel",
    ]:
        assert path in paths


async def test_a_deletion_through_the_api_and_the_verification_page(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        started = await api.post(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
        assert started.status_code == 202
        page_url = started.json()["verification_url"]
        page_path = "/" + page_url.split("/", 3)[3]
        code = await inbox.next_code(account_id)
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)

        retry_now = await api.post(f"/v1/accounts/{account_id}/deletion/retry", headers=AUTH)
        assert retry_now.status_code == 409
        assert retry_now.json()["error"] == "action_not_allowed"

        page = await api.get(page_path)
        assert page.status_code == 200
        assert "We sent a code to" in page.text and "@example.com" in page.text

        wrong = "000000" if code != "000000" else "111111"
        after_wrong = await api.post(
            page_path + "/code", data={"code": wrong}, follow_redirects=True
        )
        assert "That code is not right. 4 attempts left." in after_wrong.text

        tampered = await api.get(page_path[:-2] + ("AA" if not page_path.endswith("AA") else "BB"))
        assert tampered.status_code == 403

        wrong_again = await api.post(
            f"/v1/accounts/{account_id}/deletion/verification", json={"code": wrong}, headers=AUTH
        )
        assert wrong_again.status_code == 200
        assert wrong_again.json() == {"outcome": "wrong", "attempts_left": 3}
        malformed = await api.post(
            f"/v1/accounts/{account_id}/deletion/verification",
            json={"code": "12ab56"},
            headers=AUTH,
        )
        assert malformed.status_code == 422
        accepted = await api.post(
            f"/v1/accounts/{account_id}/deletion/verification", json={"code": code}, headers=AUTH
        )
        assert accepted.status_code == 200
        assert accepted.json()["outcome"] == "accepted"
        await (await deletions.handle(account_id)).result()
        status = await api.get(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
        assert status.json()["stage"] == "DELETED"
        code_late = await api.post(
            f"/v1/accounts/{account_id}/deletion/verification", json={"code": code}, headers=AUTH
        )
        assert code_late.status_code == 409
        cancel_late = await api.post(f"/v1/accounts/{account_id}/deletion/cancel", headers=AUTH)
        assert cancel_late.status_code == 409
        receipt = await api.get(f"/v1/accounts/{account_id}/deletion/receipt", headers=AUTH)
        assert receipt.json()["outcome"] == "DELETED"
        final_page = await api.get(page_path)
        assert "Your account has been deleted." in final_page.text


async def test_a_422_names_the_field_without_echoing_the_value(api: httpx.AsyncClient) -> None:
    body = {"user_name": "jane", "email": "secret.person@nowhere", "phone": "+14155550123"}
    response = await api.post("/v1/accounts", json=body, headers=AUTH)
    assert response.status_code == 422
    problem = response.json()
    assert problem["error"] == "invalid_request"
    assert [f["field"] for f in problem["errors"]] == ["body.email"]
    assert "secret.person" not in response.text


async def test_a_link_from_an_earlier_deletion_does_not_open_a_later_one(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    async with stack.worker():
        first = await api.post(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
        old_page = "/" + first.json()["verification_url"].split("/", 3)[3]
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        assert (await api.get(old_page)).status_code == 200
        await api.post(f"/v1/accounts/{account_id}/deletion/cancel", headers=AUTH)
        await (await deletions.handle(account_id)).result()
        second = await api.post(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
        assert second.json()["run_id"] != first.json()["run_id"]
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        refused = await api.get(old_page)
        assert refused.status_code == 403
        new_page = "/" + second.json()["verification_url"].split("/", 3)[3]
        shown = await api.get(new_page)
        assert shown.status_code == 200
        assert shown.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in shown.headers["Content-Security-Policy"]
        await deletions.cancel(account_id)
        await (await deletions.handle(account_id)).result()


async def test_the_requester_is_an_id_never_an_email(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    account_id = await new_account(pool)
    response = await api.post(
        f"/v1/accounts/{account_id}/deletion",
        json={"requested_by": "jane@example.com"},
        headers=AUTH,
    )
    assert response.status_code == 422
    assert "jane@example.com" not in response.text
    assert await pool.fetchval("select count(*) from deletions") == 0


async def test_readyz_reports_what_is_not_reachable(
    api: httpx.AsyncClient, client: Client, database_url: str, task_queue: str
) -> None:
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "postgres": "ok", "temporal": "ok"}

    closed = await create_pool(database_url, max_size=1)
    await closed.close()
    app = create_app(
        Settings(api_token=API_TOKEN, temporal_task_queue=task_queue), pool=closed, client=client
    )
    async with in_process_api(app) as http:
        not_ready = await http.get("/readyz")
    assert not_ready.status_code == 503
    body = not_ready.json()
    assert body["ready"] is False and body["temporal"] == "ok"
    assert body["postgres"].startswith("unavailable")
