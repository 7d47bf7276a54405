"""The embedded stack a benchmark runs on: a Temporal dev server with a persistent SQLite file
and an embedded PostgreSQL, both from their PyPI wheels, in a directory of the run's own."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
from pydantic import SecretStr
from temporalio.client import Client

from core.codec import data_converter_for_keys
from core.config import Settings
from service.embedded import EmbeddedPostgres, EmbeddedTemporal, postmaster_pid
from store.db import create_pool, migrate


@dataclass(frozen=True)
class Stack:
    """What every benchmark needs: a client, a pool and the settings a worker would read."""

    client: Client
    pool: asyncpg.Pool
    settings: Settings
    """TEMPORAL_ADDRESS, DATABASE_URL, PAYLOAD_KEYS and CODE_HASH_KEY of this stack (the
    worker's defaults for everything else), for workers in this process and in child processes
    alike."""
    servers: dict[str, int] = field(default_factory=dict)
    """Process ids of the servers this stack started, by name ("temporal", "postgres"), so a
    benchmark can say which of them its CPU went to; empty on servers started elsewhere."""

    def worker_environment(self) -> dict[str, str]:
        """The environment of a `python worker.py` process on this stack."""
        settings = self.settings
        assert settings.temporal_address and settings.database_url and settings.payload_keys
        assert settings.code_hash_key is not None
        return {
            "TEMPORAL_ADDRESS": settings.temporal_address,
            "TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "DATABASE_URL": settings.database_url,
            "PAYLOAD_KEYS": settings.payload_keys.get_secret_value(),
            "CODE_HASH_KEY": settings.code_hash_key.get_secret_value(),
            "WORKER_METRICS_ADDRESS": "off",
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_payload_keys() -> str:
    """A fresh AES-256 key for this run: payloads are encrypted as in production."""
    return "bench:" + base64.b64encode(os.urandom(32)).decode()


def new_code_hash_key() -> str:
    """A fresh CODE_HASH_KEY for this run: codes are hashed as in production."""
    return "bench:" + base64.b64encode(os.urandom(32)).decode()


@asynccontextmanager
async def stack_on(
    temporal_address: str,
    database_url: str,
    *,
    payload_keys: str,
    task_queue: str,
    namespace: str = "default",
) -> AsyncIterator[Stack]:
    """A stack on servers that are already running (the test suite's)."""
    settings = Settings(
        temporal_address=temporal_address,
        temporal_namespace=namespace,
        temporal_task_queue=task_queue,
        database_url=database_url,
        payload_keys=SecretStr(payload_keys),
        code_hash_key=SecretStr(new_code_hash_key()),
    )
    client = await Client.connect(
        temporal_address, namespace=namespace, data_converter=data_converter_for_keys(payload_keys)
    )
    pool = await create_pool(database_url, max_size=20)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield Stack(client=client, pool=pool, settings=settings)
    finally:
        await pool.close()


@asynccontextmanager
async def embedded_stack(directory: Path) -> AsyncIterator[Stack]:
    """Starts the dev server (`--db-filename` in `directory`) and PostgreSQL; stops both after."""
    directory.mkdir(parents=True, exist_ok=True)
    temporal = EmbeddedTemporal(
        db_file=directory / "temporal.db", port=free_port(), ui_port=free_port()
    )
    postgres = EmbeddedPostgres(directory / "postgres")
    await asyncio.to_thread(temporal.start)
    try:
        database_url = await asyncio.to_thread(postgres.start)
        try:
            async with stack_on(
                temporal.address,
                database_url,
                payload_keys=new_payload_keys(),
                task_queue="benchmark",
            ) as stack:
                servers = {"temporal": temporal.pid, "postgres": postmaster_pid(postgres.directory)}
                yield replace(
                    stack, servers={name: pid for name, pid in servers.items() if pid is not None}
                )
        finally:
            await asyncio.to_thread(postgres.stop)
    finally:
        await asyncio.to_thread(temporal.stop)
