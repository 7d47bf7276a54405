"""The `http` driver end to end: a real product API on loopback (tests/support/http_product.py)
answers the worker's signed requests and calls back the real API over real HTTP, against the
real Temporal dev server and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.http_products import HttpProductActivities, callback_path
from activities.prerequisites import PrerequisiteActivities
from contract.models import (
    AccountRef,
    DeletionPolicy,
    ProductDriver,
    PurgeProductInput,
    TaskCategory,
)
from contract.names import workflow_id_for
from contract.stages import Stage
from core.codec import EncryptionCodec, PayloadKey, unseal
from core.config import Settings
from core.webhooks import SignedClient, signature_headers
from registry.catalog import load_catalog
from service.api import create_app
from starter.client import DeletionClient
from tests.support import (
    API_TOKEN,
    Inbox,
    code_hasher_for_tests,
    new_account,
    record_history,
    start_and_receive_code,
    wait_for_stage,
)
from tests.support.http_product import ProductApi, free_socket, running_product, serving
from worker import activities_for
from workflows.account_deletion import AccountDeletion

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
POLICY = DeletionPolicy(
    http_callback_wait=timedelta(seconds=3),
    http_poll_interval=timedelta(seconds=1),
    recheck_cooldown=timedelta(0),
)


@dataclass
class HttpStack:
    product: ProductApi
    deletions: DeletionClient
    inbox: Inbox
    api: httpx.AsyncClient
    """The API over real HTTP, at `api.base_url` (PUBLIC_BASE_URL)."""
    pool: asyncpg.Pool
    client: Client

    async def delete(self, account_id: str, until: Stage = Stage.DELETED) -> None:
        code = await start_and_receive_code(self.deletions, self.inbox, account_id, POLICY)
        await self.deletions.verify(account_id, code)
        await wait_for_stage(self.deletions, account_id, until, timeout=60)


@pytest.fixture
async def http_stack(
    client: Client, pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> AsyncIterator[HttpStack]:
    """The product, the API serving its callbacks, and a worker with the product declared."""
    async with running_product(ProductApi()) as product:
        products_file = tmp_path / "products.toml"
        products_file.write_text(product.products_file())
        catalog = load_catalog(products_file)
        sock = free_socket()
        api_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(
            api_token=API_TOKEN,
            temporal_task_queue=task_queue,
            products_file=products_file,
            public_base_url=api_url,
        )
        app = create_app(settings, pool=pool, client=client)
        inbox = Inbox()
        async with (
            serving(app, sock),
            httpx.AsyncClient() as http,
            httpx.AsyncClient(base_url=api_url) as api,
        ):
            codec = EncryptionCodec.from_text(os.environ["PAYLOAD_KEYS"])
            http_products = HttpProductActivities(pool, catalog, SignedClient(http), api_url, codec)
            activities = activities_for(
                pool, inbox, code_hasher_for_tests(), catalog, http_products=http_products
            )
            async with Worker(
                client, task_queue=task_queue, workflows=[AccountDeletion], activities=activities
            ):
                deletions = DeletionClient(client, pool, task_queue)
                yield HttpStack(product, deletions, inbox, api, pool, client)


async def _request_row(pool: asyncpg.Pool, account_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "select status, rows, reason, task_token from http_product_requests"
        " where workflow_id = $1 and product = 'ledger'",
        workflow_id_for(account_id),
    )
    assert row is not None
    return row


async def _activities_scheduled(client: Client, account_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id_for(account_id)).fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


async def test_a_product_completes_by_signed_callback(http_stack: HttpStack) -> None:
    product = http_stack.product
    account_id = await new_account(http_stack.pool)
    await http_stack.delete(account_id)
    await record_history(http_stack.client, account_id, "http_product_by_callback")

    receipt = await http_stack.deletions.receipt(account_id)
    [ledger] = [p for p in receipt.products if p.product == "ledger"]
    assert (ledger.driver, ledger.reported_rows, ledger.rows) == (ProductDriver.HTTP, 42, 42)
    assert len(receipt.products) > 1, "the sql products were purged too"
    [request] = product.requests
    deletion_id = workflow_id_for(account_id)
    assert request == {
        "deletion_id": deletion_id,
        "account_id": account_id,
        "callback_url": f"{http_stack.api.base_url}".rstrip("/")
        + callback_path("ledger", deletion_id),
    }
    assert [c.status_code for c in product.callbacks] == [200]
    assert json.loads(product.callbacks[0].body) == {"status": "completed", "rows": 42}
    assert product.polls == [] and product.refused == []
    row = await _request_row(http_stack.pool, account_id)
    assert (row["status"], row["rows"], row["task_token"]) == ("completed", 42, None)
    scheduled = await _activities_scheduled(http_stack.client, account_id)
    assert scheduled.count("request_http_purge") == 1 and "poll_http_purge" not in scheduled


async def test_a_lost_callback_is_made_up_for_by_polling_without_growing_history(
    http_stack: HttpStack,
) -> None:
    product = http_stack.product
    product.mode, product.pending_polls = "lost", 3
    account_id = await new_account(http_stack.pool)
    await http_stack.delete(account_id)
    await record_history(http_stack.client, account_id, "http_product_by_polling")

    receipt = await http_stack.deletions.receipt(account_id)
    [ledger] = [p for p in receipt.products if p.product == "ledger"]
    assert ledger.reported_rows == 42
    assert product.callbacks == []
    assert product.polls == [workflow_id_for(account_id)] * 4, "3 pending, then completed"
    scheduled = await _activities_scheduled(http_stack.client, account_id)
    assert scheduled.count("request_http_purge") == 1
    assert scheduled.count("poll_http_purge") == 1, "each poll is a retry, not an event"
    row = await _request_row(http_stack.pool, account_id)
    assert (row["status"], row["task_token"]) == ("completed", None)


async def test_a_failed_product_blocks_the_purge_and_holds_identifiers_until_retried(
    http_stack: HttpStack,
) -> None:
    product = http_stack.product
    product.mode = "fail"
    name = f"held{os.urandom(4).hex()}"
    account_id = await new_account(http_stack.pool, name)
    await http_stack.delete(account_id, until=Stage.PURGE_BLOCKED)

    status = await http_stack.deletions.status(account_id)
    [task] = status.pending_tasks
    assert (task.category, task.product) == (TaskCategory.PURGE_FAILURE, "ledger")
    assert "a legal hold on the ledger" in task.message
    again = {"user_name": f"{name}x", "email": f"{name}@example.com", "phone": "+14155550142"}
    held = await http_stack.api.post("/v1/accounts", json=again, headers=AUTH)
    assert held.status_code == 409 and held.json()["error"] == "identifier_taken"
    row = await _request_row(http_stack.pool, account_id)
    assert (row["status"], row["reason"], row["task_token"]) == (
        "failed",
        "a legal hold on the ledger",
        None,
    )

    product.mode = "callback"
    await http_stack.deletions.retry(account_id)
    await wait_for_stage(http_stack.deletions, account_id, Stage.DELETED, timeout=60)
    await record_history(http_stack.client, account_id, "http_product_failed_then_retried")
    assert [r["deletion_id"] for r in product.requests] == [workflow_id_for(account_id)] * 2
    released = await http_stack.api.post("/v1/accounts", json=again, headers=AUTH)
    assert released.status_code == 201


def _signed(
    secret: str, body: str, *, message_id: str, at: datetime | None = None
) -> dict[str, str]:
    if at is None:
        return signature_headers(Webhook(secret), message_id, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }


async def test_forged_stale_replayed_and_malformed_callbacks_change_nothing(
    http_stack: HttpStack,
) -> None:
    product = http_stack.product
    account_id = await new_account(http_stack.pool)
    await http_stack.delete(account_id)
    deletion_id = workflow_id_for(account_id)
    url = callback_path("ledger", deletion_id)
    before_row = dict(await _request_row(http_stack.pool, account_id))
    before_seen = await http_stack.pool.fetchval("select count(*) from http_product_callbacks")
    before_receipt = await http_stack.deletions.receipt(account_id)
    failed = json.dumps({"status": "failed", "reason": "forged"})
    stale_at = datetime.now(UTC) - timedelta(minutes=10)
    other_secret = ProductApi().secret

    [sent] = product.callbacks
    answers = {
        "replayed": await http_stack.api.post(url, content=sent.body, headers=sent.headers),
        "forged": await http_stack.api.post(
            url, content=failed, headers=_signed(other_secret, failed, message_id="msg_f")
        ),
        "unsigned": await http_stack.api.post(url, content=failed),
        "stale": await http_stack.api.post(
            url,
            content=failed,
            headers=_signed(product.secret, failed, message_id="msg_s", at=stale_at),
        ),
        "contrary": await http_stack.api.post(
            url, content=failed, headers=_signed(product.secret, failed, message_id="msg_c")
        ),
        "malformed": await http_stack.api.post(
            url,
            content='{"status": "done"}',
            headers=_signed(product.secret, '{"status": "done"}', message_id="msg_m"),
        ),
        "unknown product": await http_stack.api.post(
            callback_path("nosuch", deletion_id),
            content=failed,
            headers=_signed(product.secret, failed, message_id="msg_p"),
        ),
        "unknown deletion": await http_stack.api.post(
            callback_path("ledger", "account-deletion-acct-nobody"),
            content=failed,
            headers=_signed(product.secret, failed, message_id="msg_d"),
        ),
    }
    statuses = {case: (r.status_code, r.json()["error"]) for case, r in answers.items()}
    assert statuses == {
        "replayed": (409, "callback_replayed"),
        "forged": (401, "invalid_signature"),
        "unsigned": (401, "invalid_signature"),
        "stale": (401, "invalid_signature"),
        "contrary": (409, "result_already_recorded"),
        "malformed": (422, "invalid_request"),
        "unknown product": (404, "product_not_found"),
        "unknown deletion": (404, "deletion_not_found"),
    }
    assert {r.headers["content-type"] for r in answers.values()} == {"application/problem+json"}
    assert product.secret not in "".join(r.text for r in answers.values())
    assert dict(await _request_row(http_stack.pool, account_id)) == before_row
    seen = await http_stack.pool.fetchval("select count(*) from http_product_callbacks")
    assert seen == before_seen
    assert await http_stack.deletions.receipt(account_id) == before_receipt


async def test_a_product_done_at_once_and_its_live_resources(http_stack: HttpStack) -> None:
    """200 completed answers the request at once (no callback, no poll); the product's live
    resources are pending tasks until it lists none."""
    product = http_stack.product
    product.mode = "immediate"
    account_id = await new_account(http_stack.pool)
    product.live[account_id] = [
        {"item": "ledger book L-7", "message": "L-7 is open.", "resolution": "Close L-7."}
    ]
    await http_stack.deletions.start(account_id, policy=POLICY)
    status = await wait_for_stage(http_stack.deletions, account_id, Stage.AWAITING_TASKS)
    [task] = status.pending_tasks
    assert (task.category, task.product, task.message) == (
        TaskCategory.CLOUD_PRODUCT,
        "ledger",
        "L-7 is open.",
    )
    assert task.item.endswith("ledger book L-7")
    product.live[account_id] = []
    await http_stack.deletions.recheck(account_id)
    await wait_for_stage(http_stack.deletions, account_id, Stage.AWAITING_VERIFICATION)
    code = await http_stack.inbox.next_code(account_id)
    await http_stack.deletions.verify(account_id, code)
    await wait_for_stage(http_stack.deletions, account_id, Stage.DELETED, timeout=60)
    assert product.callbacks == [] and product.polls == []
    assert len(product.requests) == 1
    receipt = await http_stack.deletions.receipt(account_id)
    assert [p.reported_rows for p in receipt.products if p.product == "ledger"] == [42]


async def test_an_unreachable_live_resource_api_fails_the_check_for_a_retry(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    sock = free_socket()  # bound, never listening: connections are refused
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    product = ProductApi(url=dead)
    (tmp_path / "products.toml").write_text(product.products_file())
    catalog = load_catalog(tmp_path / "products.toml")
    account_id = await new_account(pool)
    ref = AccountRef(account_id=account_id, workflow_id=workflow_id_for(account_id))
    async with httpx.AsyncClient() as http:
        check = PrerequisiteActivities(pool, catalog, SignedClient(http)).check_prerequisites
        started = time.monotonic()
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(check, ref)
    sock.close()
    assert raised.value.type == "ProductUnavailable"
    assert not raised.value.non_retryable, "the workflow retries the check"
    assert time.monotonic() - started < 10


@pytest.fixture
async def http_activities(
    pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[tuple[ProductApi, HttpProductActivities, EncryptionCodec]]:
    """The driver's activities alone, on a product that answers at once or never calls back."""
    async with running_product(ProductApi()) as product:
        (tmp_path / "products.toml").write_text(product.products_file())
        catalog = load_catalog(tmp_path / "products.toml")
        codec = EncryptionCodec([PayloadKey.generate("tokens")])
        async with httpx.AsyncClient() as http:
            activities = HttpProductActivities(
                pool, catalog, SignedClient(http), "http://api.invalid", codec
            )
            yield product, activities, codec


async def test_a_repeated_request_is_answered_from_the_record_without_asking_again(
    pool: asyncpg.Pool,
    http_activities: tuple[ProductApi, HttpProductActivities, EncryptionCodec],
) -> None:
    product, activities, _ = http_activities
    product.mode = "immediate"
    account_id = await new_account(pool)
    request = PurgeProductInput(
        account_id=account_id, workflow_id=workflow_id_for(account_id), product="ledger"
    )
    first = await ActivityEnvironment().run(activities.request_http_purge, request)
    again = await ActivityEnvironment().run(activities.request_http_purge, request)
    polled = await ActivityEnvironment().run(activities.poll_http_purge, request)
    assert first == again == polled and first.reported_rows == 42
    assert len(product.requests) == 1 and product.polls == []


async def test_the_task_token_is_kept_sealed_until_a_result_clears_it(
    pool: asyncpg.Pool,
    http_activities: tuple[ProductApi, HttpProductActivities, EncryptionCodec],
) -> None:
    product, activities, codec = http_activities
    product.mode, product.pending_polls = "lost", 1
    account_id = await new_account(pool)
    request = PurgeProductInput(
        account_id=account_id, workflow_id=workflow_id_for(account_id), product="ledger"
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, task_token=b"the-task-token-of-this-attempt")
    with pytest.raises(BaseException) as left_open:
        await env.run(activities.request_http_purge, request)
    assert type(left_open.value).__name__ == "_CompleteAsyncError", "completed by callback"
    sealed = (await _request_row(pool, account_id))["task_token"]
    assert b"the-task-token-of-this-attempt" not in sealed
    assert unseal(codec, sealed) == b"the-task-token-of-this-attempt"

    with pytest.raises(ApplicationError) as pending:
        await ActivityEnvironment().run(activities.poll_http_purge, request)
    assert (pending.value.type, pending.value.non_retryable) == ("ProductPurgePending", False)
    receipt = await ActivityEnvironment().run(activities.poll_http_purge, request)
    assert receipt.reported_rows == 42
    row = await _request_row(pool, account_id)
    assert (row["status"], row["task_token"]) == ("completed", None)
