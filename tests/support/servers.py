"""PostgreSQL for tests: a database of a test's own (empty, or cloned from the migrated template),
or a server of a test's own (to stop it under a running stack)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.embedded import EmbeddedPostgres
from store.db import migrate


def dsn_for(admin_dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{database}"))


async def migrate_database(dsn: str) -> None:
    """Applies every migration to the database at `dsn`."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@asynccontextmanager
async def new_database(
    admin_dsn: str, name: str, *, template: str | None = None
) -> AsyncIterator[str]:
    """A database `name` on the admin DSN's server, empty or cloned from `template` (fast: a
    file copy), dropped afterwards. Yields its DSN."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(
            f"create database {name}" + (f" template {template}" if template else "")
        )
    finally:
        await admin.close()
    yield dsn_for(admin_dsn, name)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"drop database if exists {name} with (force)")
    finally:
        await admin.close()


@asynccontextmanager
async def migrated_embedded_postgres(data_dir: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL server of the test's own, migrated, stopped afterwards: for tests that stop
    it under a running stack. Yields the server and the DSN of its database."""
    server = EmbeddedPostgres(data_dir)
    # start() runs its own event loop (it creates the database): off this one.
    dsn = await asyncio.to_thread(server.start)
    try:
        await migrate_database(dsn)
        yield server, dsn
    finally:
        await asyncio.to_thread(server.stop)
