"""Workers and the stack a test drives deletions on.

- In this process: `Stack` (the `stack` fixture) holds the client, the pool, the test's own task
  queue, an `Inbox` and a `DeletionClient`; `async with stack.worker():` runs a worker with the
  real workflow and activities whose notifier is that inbox.
- As an operator runs it: `worker_process(webhook_worker_env(...), log)` is `python worker.py`
  in a process of its own, sending its messages to a `Gateway`.
- The API in this process: `in_process_api(app)` (the `api` fixture uses it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.worker import Worker

from activities.notify import Notifier
from core.code_hash import CodeHasher
from registry.catalog import Catalog
from starter.client import DeletionClient
from tests.support.gateway import Gateway
from tests.support.inbox import Inbox
from worker import activities_for
from workflows.account_deletion import AccountDeletion

REPO_ROOT = Path(__file__).resolve().parents[2]

API_TOKEN = "test-token-0123456789"
"""The API token of the `api` fixture's app (a module may override the `api_token` fixture)."""

TEST_CODE_HASH_KEY = "codes1:" + "c29tZS1maXhlZC10ZXN0LWNvZGUtaGFzaC1rZXkhISE="
"""CODE_HASH_KEY of the test session (tests/conftest.py exports it when the environment sets
none): the workers in this process and the worker processes the tests start hash and check
codes with it."""


def code_hasher_for_tests() -> CodeHasher:
    return CodeHasher.from_text(os.environ.get("CODE_HASH_KEY") or TEST_CODE_HASH_KEY)


@asynccontextmanager
async def running_worker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    notifier: Notifier,
    *,
    batch_size: int = 500,
    catalog: Catalog | None = None,
) -> AsyncIterator[Worker]:
    """A worker in this process with the real workflow and activities, polling `task_queue`;
    its products are the built-in ones, or `catalog`'s (products beyond this database)."""
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[AccountDeletion],
        activities=activities_for(
            pool, notifier, code_hasher_for_tests(), catalog, purge_batch_size=batch_size
        ),
    ) as worker:
        yield worker


@dataclass
class Stack:
    """What a test drives deletions with, on its own task queue: `async with stack.worker():`
    serves them, `stack.inbox` receives the user's messages, `stack.deletions` is the client the
    console backend uses."""

    client: Client
    pool: asyncpg.Pool
    task_queue: str
    inbox: Inbox = field(default_factory=Inbox)
    deletions: DeletionClient = field(init=False)

    def __post_init__(self) -> None:
        self.deletions = DeletionClient(self.client, self.pool, self.task_queue)

    def worker(
        self, *, batch_size: int = 500, catalog: Catalog | None = None
    ) -> AbstractAsyncContextManager[Worker]:
        """A worker with the real activities, delivering to `inbox`, for the `async with`."""
        return running_worker(
            self.client,
            self.pool,
            self.task_queue,
            self.inbox,
            batch_size=batch_size,
            catalog=catalog,
        )


def webhook_worker_env(
    client: Client,
    task_queue: str,
    database_url: str,
    gateway: Gateway,
    *,
    batch_size: int,
    shutdown_seconds: int,
    **more: str,
) -> dict[str, str]:
    """The environment of a `worker_process` on the client's server and namespace, serving
    `task_queue` on the database at `database_url` and delivering to `gateway` (signed with its
    secret): purges go in batches of exactly `batch_size` rows (PURGE_BATCH_SECONDS 0), SIGTERM
    gives running activities `shutdown_seconds`."""
    return {
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATABASE_URL": database_url,
        "CODE_HASH_KEY": os.environ.get("CODE_HASH_KEY") or TEST_CODE_HASH_KEY,
        "NOTIFIER": "webhook",
        "NOTIFY_WEBHOOK_URL": gateway.url,
        "NOTIFY_WEBHOOK_SECRET": gateway.secret,
        "PURGE_BATCH_SIZE": str(batch_size),
        "PURGE_BATCH_SECONDS": "0",
        "WORKER_SHUTDOWN_SECONDS": str(shutdown_seconds),
        **more,
    }


@contextmanager
def worker_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python worker.py`, as an operator runs it, with its own environment."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "worker.py")],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def product_worker_process(
    client: Client, product: str, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`account-deletion product-worker <product>`, as a product team runs it: a process of
    its own on the client's server and namespace, with `env` (its database, batch size)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "product-worker", product],
            env={
                **os.environ,
                "TEMPORAL_ADDRESS": client.service_client.config.target_host,
                "TEMPORAL_NAMESPACE": client.namespace,
                "LOG_FORMAT": "text",
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@asynccontextmanager
async def in_process_api(
    app: FastAPI, *, client_address: tuple[str, int] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in this process, its lifespan run as uvicorn would."""
    async with app.router.lifespan_context(app):
        transport = (
            httpx.ASGITransport(app=app, client=client_address)
            if client_address
            else httpx.ASGITransport(app=app)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield http
