"""The kit's bookkeeping in a product's own database: the same two tables, with the same
columns, that the deletion service keeps for its built-in products (migration 0005), so that
one engine writes both. Created idempotently when a product worker starts."""

from __future__ import annotations

import asyncpg

BOOKKEEPING_SQL = """
-- Each batch's count, committed with the batch: the receipt's exact counts.
create table if not exists purge_progress (
    account_id   text not null,
    product      text not null,
    table_name   text not null,
    method       text not null check (method in ('delete', 'anonymise')),
    rows         bigint not null default 0,
    batches      integer not null default 0,
    started_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    primary key (account_id, product, table_name)
);
-- One row per account once its purge finished and the probe found nothing left.
create table if not exists product_purges (
    account_id     text not null,
    product        text not null,
    workflow_id    text not null,
    completed_at   timestamptz not null default now(),
    verified_clean boolean not null,
    primary key (account_id, product)
);
"""

SCHEMA_LOCK_KEY = 0x6B69_745F_7363_6865
"""Any fixed 64-bit number: processes starting at once create the schema one after the other
(two concurrent `create table if not exists` of one table can both try to create it)."""


async def ensure_schema(pool: asyncpg.Pool, *statements: str) -> None:
    """Applies the kit's bookkeeping and then `statements` (a product's own idempotent
    schema), in one transaction under an advisory lock."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
        await conn.execute(BOOKKEEPING_SQL)
        for statement in statements:
            await conn.execute(statement)
