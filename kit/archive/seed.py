"""Rows of one account in the archive's database: for the demo accounts and the tests.

Deterministic ids: seeding an account again with the same `tag` adds nothing twice (vaults,
jobs); objects and log lines are added only with their vault."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from kit.declarations import Connection, identifier


@dataclass(frozen=True)
class ArchiveData:
    """What to give an account: `live` adds an active and a locked vault and a retrieval in
    progress (each blocks its deletion); the rest is residual (deleted vaults, finished jobs)."""

    vaults: int = 2
    objects: int = 20
    """Per residual vault."""
    jobs: int = 2
    log_lines: int = 5
    """Per residual vault."""
    live: bool = False


async def seed_archive(pool: asyncpg.Pool, account_id: str, data: ArchiveData) -> dict[str, int]:
    """Adds the account's rows (in one transaction) unless it has vaults already; returns the
    account's rows per table."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(hashtext($1))", account_id)
        if not await conn.fetchval(
            "select exists (select 1 from archive_vaults where account_id = $1)", account_id
        ):
            await _insert(conn, account_id, data)
        return {table: await _count(conn, table, account_id) for table in TABLES}


TABLES = ("archive_access_log", "archive_retrieval_jobs", "archive_objects", "archive_vaults")
"""Every table of the archive that holds an account's rows."""


async def _count(conn: Connection, table: str, account_id: str) -> int:
    sql = f"select count(*) from {identifier(table)} where account_id = $1"
    return int(await conn.fetchval(sql, account_id))


async def _insert(conn: Connection, account_id: str, data: ArchiveData) -> None:
    await conn.execute(
        """
        insert into archive_vaults (vault_id, account_id, name, region, state, created_at)
        select 'vault-' || $1 || '-' || g, $1, 'backups-' || g, 'eu-west-1', 'deleted',
               now() - interval '400 days'
        from generate_series(1, $2) g
        """,
        account_id,
        data.vaults,
    )
    await conn.execute(
        """
        insert into archive_objects (account_id, vault_id, object_key, size_bytes, archived_at)
        select $1, 'vault-' || $1 || '-' || v, 'backup-' || o || '.tar.zst', 1048576::bigint * o,
               now() - interval '300 days'
        from generate_series(1, $2) v, generate_series(1, $3) o
        """,
        account_id,
        data.vaults,
        data.objects,
    )
    await conn.execute(
        """
        insert into archive_retrieval_jobs (job_id, account_id, vault_id, object_key, state)
        select 'job-' || $1 || '-' || g, $1, 'vault-' || $1 || '-1', 'backup-1.tar.zst',
               case when g % 2 = 0 then 'expired' else 'succeeded' end
        from generate_series(1, $2) g
        """,
        account_id,
        data.jobs if data.vaults else 0,
    )
    await conn.execute(
        """
        insert into archive_access_log (account_id, vault_id, action, at)
        select $1, 'vault-' || $1 || '-' || v, 'list', now() - interval '1 day' * l
        from generate_series(1, $2) v, generate_series(1, $3) l
        """,
        account_id,
        data.vaults,
        data.log_lines,
    )
    if data.live:
        await conn.execute(
            """
            insert into archive_vaults (vault_id, account_id, name, region, state) values
                ('vault-' || $1 || '-photos', $1, 'photos', 'eu-west-1', 'active'),
                ('vault-' || $1 || '-records', $1, 'records', 'us-east-1', 'locked')
            """,
            account_id,
        )
        await conn.execute(
            """
            insert into archive_retrieval_jobs (job_id, account_id, vault_id, object_key, state)
            values ('job-' || $1 || '-restore', $1, 'vault-' || $1 || '-photos',
                    'photos-2024.tar.zst', 'in_progress')
            """,
            account_id,
        )
