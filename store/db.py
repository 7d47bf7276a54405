"""The PostgreSQL connection pool and the ordered, tracked, concurrency-safe migrations."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Any fixed 64-bit number: every process that migrates takes this lock first, so two
# processes starting at once apply each migration exactly once, one after the other.
_MIGRATION_LOCK_KEY = 0x6163_6374_6465_6C31

logger = logging.getLogger(__name__)

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of its own or one borrowed from the pool: both run the same queries."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Releases a connection to the pool without the default reset query.

    asyncpg's default sends `RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()` on
    every release: a round trip per activity for state this product never creates (it sets
    no session settings, listens to nothing, holds no cursors outside transactions and takes
    advisory locks only for a transaction). A transaction left open is still rolled back:
    the pool does that before calling this.
    """


async def create_pool(
    dsn: str,
    *,
    max_size: int = 10,
    query_logger: Callable[[LoggedQuery], None] | None = None,
) -> asyncpg.Pool:
    """One pool per process, opened at start-up and closed at shutdown. `query_logger` sees
    every statement of its connections (the benchmarks count round trips with it)."""

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        if query_logger is not None:
            conn.add_query_logger(query_logger)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=init,
        reset=_keep_session,
        command_timeout=60,
    )
    assert pool is not None
    return pool


async def wait_for_database(dsn: str, *, timeout: float = 60.0) -> None:
    """Waits until PostgreSQL accepts connections, so that start order does not matter."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL did not accept connections: {error}") from error
            await asyncio.sleep(0.5)
        else:
            await conn.close()
            return


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migrations are `NNNN_name.sql` files applied in file-name order."""
    files = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    if not files:
        raise FileNotFoundError(f"no migrations found in {directory}")
    return [Migration(version=path.stem, sql=path.read_text()) for path in files]


class MigrationChecksumMismatch(RuntimeError):
    """An applied migration was edited afterwards: write a new migration instead."""


async def migrate(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Applies the pending migrations in one transaction (all or none); returns their versions."""
    migrations = load_migrations(directory)
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
        await conn.execute(
            """
            create table if not exists schema_migrations (
                version    text primary key,
                checksum   text not null,
                applied_at timestamptz not null default now()
            )
            """
        )
        rows = await conn.fetch("select version, checksum from schema_migrations")
        applied: dict[str, Any] = {row["version"]: row["checksum"] for row in rows}
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationChecksumMismatch(
                        f"migration {migration.version} changed after it was applied"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "insert into schema_migrations (version, checksum) values ($1, $2)",
                migration.version,
                migration.checksum,
            )
            applied_now.append(migration.version)
            logger.info("applied migration %s", migration.version)
    return applied_now
