"""Every error answer of the API is an RFC 9457 problem (`application/problem+json`), echoes
no secret, and says when to come back where waiting helps (429, 503); a malformed credential
(a link, a cookie, a token) is refused, never a 500."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from contract.stages import Stage
from core.config import Settings
from service.api import create_app
from service.api.codec_access import SESSION_COOKIE
from store.db import create_pool
from tests.support import API_TOKEN, Stack, in_process_api, new_account, start_and_receive_code

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    where = f"{response.request.method} {response.request.url.path} → {response.text[:300]}"
    assert response.status_code == status, where
    assert response.headers["content-type"].startswith(PROBLEM), where
    body: dict[str, Any] = response.json()
    assert body["status"] == status, where
    assert body["error"] == error, where
    assert isinstance(body["type"], str) and body["type"], where
    assert isinstance(body["title"], str) and body["title"], where
    assert isinstance(body["detail"], str) and body["detail"], where
    assert "Traceback" not in response.text, where
    return body


async def test_error_answers_are_problem_details(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/accounts/acct-nope/deletion"), 401, "unauthorized")
    assert_problem(
        await api.get("/v1/accounts/acct-nope/deletion", headers=AUTH), 404, "account_not_found"
    )
    assert_problem(await api.get("/v1/nothing-here", headers=AUTH), 404, "not_found")
    assert_problem(await api.delete("/v1/accounts", headers=AUTH), 405, "method_not_allowed")
    big = await api.post(
        "/v1/accounts",
        content=b"{" + b" " * 20000 + b"}",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert_problem(big, 413, "body_too_large")


async def test_a_validation_problem_lists_the_fields_without_their_values(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    account_id = await new_account(pool)
    secret = "98765x"
    response = await api.post(
        f"/v1/accounts/{account_id}/deletion/verification",
        json={"code": secret, "extra": "jane@example.com"},
        headers=AUTH,
    )
    body = assert_problem(response, 422, "invalid_request")
    assert {e["field"] for e in body["errors"]} == {"body.code", "body.extra"}
    for error in body["errors"]:
        assert set(error) == {"field", "message"}
    assert secret not in response.text and "jane@example.com" not in response.text


async def test_too_soon_says_when_to_come_back(api: httpx.AsyncClient, stack: Stack) -> None:
    account_id = await new_account(stack.pool)
    async with stack.worker():
        await start_and_receive_code(stack.deletions, stack.inbox, account_id)
        response = await api.post(f"/v1/accounts/{account_id}/deletion/resend-code", headers=AUTH)
        assert_problem(response, 429, "rate_limited")
        assert 1 <= int(response.headers["Retry-After"]) <= 61
        status = await stack.deletions.status(account_id)
        assert status.stage is Stage.AWAITING_VERIFICATION
        await stack.deletions.cancel(account_id)


async def test_an_unreachable_database_is_a_503_with_retry_after(
    client: Client, database_url: str, task_queue: str
) -> None:
    closed = await create_pool(database_url, max_size=1)
    await closed.close()
    app = create_app(
        Settings(api_token=API_TOKEN, temporal_task_queue=task_queue), pool=closed, client=client
    )
    async with in_process_api(app) as http:
        ready = await http.get("/readyz")
        status = await http.get("/v1/accounts/acct-x/deletion", headers=AUTH)
    body = assert_problem(ready, 503, "not_ready")
    assert body["ready"] is False and body["postgres"].startswith("unavailable")
    assert int(ready.headers["Retry-After"]) > 0
    assert_problem(status, 503, "database_unavailable")
    assert int(status.headers["Retry-After"]) > 0


@pytest.mark.parametrize("link", ["a.%C3%A9", "%C3%A9.%C3%A9", "eyJ4Ijp9.%E2%82%AC%E2%82%AC"])
async def test_a_link_with_non_ascii_characters_is_refused(
    api: httpx.AsyncClient, link: str
) -> None:
    for response in (await api.get(f"/verify/{link}"), await api.post(f"/verify/{link}/cancel")):
        assert response.status_code == 403, response.text
        assert "This link does not work" in response.text


@pytest.mark.parametrize("signature", ["é", "é" * 64, "\u0663" * 64])
async def test_a_codec_cookie_or_token_with_non_ascii_characters_is_refused(
    api: httpx.AsyncClient, signature: str
) -> None:
    cookie = f"{SESSION_COOKIE}={int(time.time()) + 3600}.{signature}".encode()
    response = await api.post("/codec/decode", json={"payloads": []}, headers={b"Cookie": cookie})
    assert_problem(response, 401, "unauthorized")
    superscript = await api.post(
        "/codec/decode",
        json={"payloads": []},
        headers={b"Cookie": f"{SESSION_COOKIE}=\u00b2.abc".encode()},
    )
    assert_problem(superscript, 401, "unauthorized")
    for token in (f"Bearer {signature}".encode(), b"Bearer \xff\xfe"):
        bearer = await api.get("/v1/accounts/acct-x/deletion", headers={b"Authorization": token})
        assert_problem(bearer, 401, "unauthorized")
        codec = await api.post(
            "/codec/decode", json={"payloads": []}, headers={b"Authorization": token}
        )
        assert_problem(codec, 401, "unauthorized")
