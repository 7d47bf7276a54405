"""Migrations: applied in order, once, tracked, and safe when two processes start at once."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from store.db import (
    MIGRATIONS_DIR,
    MigrationChecksumMismatch,
    create_pool,
    load_migrations,
    migrate,
)
from tests.support import new_database


@pytest.fixture
async def empty_database_url(postgres_admin_dsn: str) -> AsyncIterator[str]:
    name = f"empty_{uuid.uuid4().hex[:12]}"
    async with new_database(postgres_admin_dsn, name) as url:
        yield url


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    numbers = [int(v[:4]) for v in versions]
    expected = range(1, max(numbers) + 1)
    assert numbers == list(expected)


async def test_two_processes_migrating_at_once_apply_each_migration_once(
    empty_database_url: str,
) -> None:
    first = await asyncpg.connect(empty_database_url)
    second = await asyncpg.connect(empty_database_url)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
    finally:
        await first.close()
        await second.close()
    all_versions = [m.version for m in load_migrations()]
    assert sorted(results, key=len) == [[], all_versions]
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("select count(*) from schema_migrations") == len(all_versions)
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_an_applied_migration_that_was_edited_is_refused(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, directory)
        first = sorted(directory.glob("0001_*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited afterwards\n")
        with pytest.raises(MigrationChecksumMismatch):
            await migrate(conn, directory)
    finally:
        await conn.close()


async def test_a_failing_migration_applies_nothing(empty_database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "9999_broken.sql").write_text("create table broken (; \n")
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await migrate(conn, directory)
        tables = await conn.fetchval(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()


async def test_a_connection_left_in_a_transaction_returns_to_the_pool_rolled_back(
    database_url: str,
) -> None:
    """The pool skips asyncpg's reset query (no session state here), not the rollback."""
    pool = await create_pool(database_url, max_size=1)
    account_id = f"left-open-{uuid.uuid4().hex[:8]}"
    try:
        async with pool.acquire() as conn:
            left_open = conn.transaction()
            await left_open.start()
            await conn.execute(
                "insert into audit_events (account_id, workflow_id, kind, detail)"
                " values ($1, 'none', 'probe', '{}')",
                account_id,
            )
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            rows = await conn.fetchval(
                "select count(*) from audit_events where account_id = $1", account_id
            )
        assert rows == 0
    finally:
        await pool.close()
