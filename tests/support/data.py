"""Test data: registered accounts with residual rows, the things that block a deletion, and the
checks of what a finished deletion left behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from accounts.registration import RegistrationRequest, register_account
from contract.models import DeletionReceipt
from contract.stages import Stage
from registry.products import PRODUCTS


async def new_account(pool: asyncpg.Pool, name: str | None = None) -> str:
    """A registered account with some residual data in a few products and a session."""
    name = name or f"user{uuid.uuid4().hex[:10]}"
    account = await register_account(
        pool,
        RegistrationRequest(user_name=name, email=f"{name}@example.com", phone=_phone()),
    )
    account_id = account.account_id
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "insert into compute_instances values ($1, $2, 'eu-west-1', 'old-web', 'e2-small',"
            " 'terminated')",
            f"i-{account_id}",
            account_id,
        )
        await conn.execute(
            "insert into storage_buckets values ($1, $2, 'old-bucket', 'eu-west-1', 'deleted')",
            f"b-{account_id}",
            account_id,
        )
        await conn.execute(
            """
            insert into storage_objects (account_id, bucket_id, object_key, size_bytes)
            select $1, $2, 'photos/' || n || '.jpg', n * 1000 from generate_series(1, 120) n
            """,
            account_id,
            f"b-{account_id}",
        )
        await conn.execute(
            "insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)"
            " values ($1, $2, '2026-10', 1234, 'paid', 'Jane Doe')",
            f"bill-{account_id}",
            account_id,
        )
        await conn.execute(
            "insert into sessions (session_id, account_id, expires_at)"
            " values ($1, $2, now() + interval '1 day')",
            uuid.uuid4(),
            account_id,
        )
    return account_id


async def contact_of(pool: asyncpg.Pool, account_id: str) -> asyncpg.Record:
    """The account's email and phone: what must never show in logs or histories."""
    account = await pool.fetchrow(
        "select email, phone from accounts where account_id = $1", account_id
    )
    assert account is not None
    return account


def _phone() -> str:
    """A valid number of the North American plan (its exchange does not start with 0 or 1)."""
    return "+1415" + str(2_000_000 + uuid.uuid4().int % 8_000_000)


async def attach_every_prerequisite(pool: asyncpg.Pool, account_id: str) -> None:
    """One thing of each category that blocks deletion."""
    a = account_id
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "insert into compute_instances values ($1, $2, 'us-east-1', 'web-1', 'e2-medium',"
            " 'running')",
            f"i-live-{a}",
            a,
        )
        await conn.execute(
            "insert into storage_buckets values ($1, $2, 'photos', 'us-east-1', 'active')",
            f"b-live-{a}",
            a,
        )
        await conn.execute(
            "insert into account_balances (account_id, funds_cents) values ($1, 2500)", a
        )
        await conn.execute(
            "insert into account_groups (group_id, name) values ($1, 'Platform team')", f"g-{a}"
        )
        await conn.execute(
            "insert into group_memberships (group_id, account_id, role) values ($1, $2, 'owner')",
            f"g-{a}",
            a,
        )
        await conn.execute(
            "insert into partner_relationships (relationship_id, account_id, kind, counterparty,"
            " status) values ($1, $2, 'reseller', 'Acme Cloud Resellers', 'active'),"
            " ($3, $2, 'partner', 'Initech Consulting', 'active')",
            f"r-{a}",
            a,
            f"p-{a}",
        )
        await conn.execute(
            "insert into contracts values ($1, $2, 'Enterprise support 2026', 'active',"
            " '2026-12-31')",
            f"c-{a}",
            a,
        )
        await conn.execute(
            "insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)"
            " values ($1, $2, '2026-11', 9900, 'unpaid', 'Jane Doe')",
            f"unpaid-{a}",
            a,
        )


async def resolve_every_prerequisite(pool: asyncpg.Pool, account_id: str) -> None:
    """What the user does from the pending tasks list: terminate, withdraw, leave, end, pay."""
    a = account_id
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "update compute_instances set state = 'terminated' where account_id = $1", a
        )
        await conn.execute("update storage_buckets set state = 'deleted' where account_id = $1", a)
        await conn.execute("update account_balances set funds_cents = 0 where account_id = $1", a)
        await conn.execute("delete from group_memberships where account_id = $1", a)
        await conn.execute(
            "update partner_relationships set status = 'ended', ended_at = now()"
            " where account_id = $1",
            a,
        )
        await conn.execute("update contracts set status = 'fulfilled' where account_id = $1", a)
        await conn.execute("update bills set status = 'paid' where account_id = $1", a)


async def table_snapshot(pool: asyncpg.Pool) -> dict[str, str]:
    """Row count and a digest of the content of every table: to show that nothing changed."""
    async with pool.acquire() as conn:
        tables = [
            row["tablename"]
            for row in await conn.fetch(
                "select tablename from pg_tables where schemaname = current_schema()"
            )
        ]
        # Table names come from the catalogue, not from input.
        return {
            table: await conn.fetchval(
                "select count(*) || ' rows, ' ||"
                f" coalesce(md5(string_agg(t::text, '|' order by t::text)), '-') from {table} t"
            )
            for table in tables
        }


async def seed_residual_rows(
    pool: asyncpg.Pool, account_id: str, *, objects: int, records: int, access_logs: int = 0
) -> dict[str, int]:
    """Residual rows for a purge to work through: objects in the bucket `new_account` made, DNS
    records in a deleted zone, CDN access logs on a deleted domain. Returns the account's rows
    per table of those products (and its one compute instance), as the receipt should count."""
    a = account_id
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            insert into storage_objects (account_id, bucket_id, object_key, size_bytes)
            select $1, $2, 'logs/' || n, n from generate_series(1, $3) n
            """,
            a,
            f"b-{a}",
            objects,
        )
        await conn.execute(
            "insert into dns_zones values ($1, $2, 'example.org', 'deleted')", f"z-{a}", a
        )
        await conn.execute(
            """
            insert into dns_records (account_id, zone_id, name, record_type, value)
            select $1, $2, 'host' || n || '.example.org', 'A', '192.0.2.1'
            from generate_series(1, $3) n
            """,
            a,
            f"z-{a}",
            records,
        )
        if access_logs:
            await conn.execute(
                "insert into cdn_domains values ($1, $2, 'cdn.example.org',"
                " 'origin.example.org', 'deleted')",
                f"cdn-{a}",
                a,
            )
            await conn.execute(
                """
                insert into cdn_access_logs
                    (account_id, cdn_domain_id, requested_at, path, bytes_sent)
                select $1, $2, now(), '/img/' || n, n from generate_series(1, $3) n
                """,
                a,
                f"cdn-{a}",
                access_logs,
            )
        # The table names come from this literal list.
        return {
            table: int(
                await conn.fetchval(f"select count(*) from {table} where account_id = $1", a)
            )
            for table in (
                "storage_objects",
                "storage_buckets",
                "dns_records",
                "dns_zones",
                "cdn_access_logs",
                "cdn_domains",
                "compute_instances",
            )
        }


@asynccontextmanager
async def object_locked(pool: asyncpg.Pool, account_id: str, position: int) -> AsyncIterator[None]:
    """Holds a row lock on the account's object at `position` (in purge order): the Object
    Storage purge stops at the batch that holds it, as on a slow or contended table."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            select 1 from storage_objects where object_id = (
                select object_id from storage_objects where account_id = $1
                order by object_id offset $2 limit 1)
            for update
            """,
            account_id,
            position,
        )
        yield


async def purged_rows(pool: asyncpg.Pool, account_id: str) -> int:
    return int(
        await pool.fetchval(
            "select coalesce(sum(rows), 0) from purge_progress where account_id = $1", account_id
        )
    )


async def settled_purged_rows(pool: asyncpg.Pool, account_id: str) -> int:
    """The rows purged once a killed worker's last statements have ended: a batch is one
    statement, and one the server received before the kill still commits (with its count)
    a moment after the process is gone."""
    last = await purged_rows(pool, account_id)
    while True:
        await asyncio.sleep(0.5)
        now = await purged_rows(pool, account_id)
        if now == last:
            return now
        last = now


async def assert_deleted_exactly_once(
    pool: asyncpg.Pool, account_id: str, seeded: dict[str, int], receipt: DeletionReceipt
) -> None:
    """The non-negotiables of a finished deletion, whatever crashed or was retried on the way:
    every product of the registry purged exactly once in effect (one completion, one audit
    event, counts equal to the rows that were there, nothing left), the identifiers released
    exactly once, and only after the last purge of the account had finished.

    `seeded` is what `seed_residual_rows` returned: the account's rows per table."""
    assert receipt.outcome is Stage.DELETED, f"{account_id}: {receipt.outcome} ({receipt.reason})"
    registry = sorted(product.name for product in PRODUCTS)
    assert sorted(p.product for p in receipt.products) == registry, account_id
    assert all(p.verified_clean for p in receipt.products), account_id
    counted = {t.table: t.rows for p in receipt.products for t in p.tables}
    for table, rows in seeded.items():
        assert counted[table] == rows, f"{account_id}: {table} counted {counted[table]}, had {rows}"
        # The table names come from seed_residual_rows's literal list.
        left = await pool.fetchval(
            f"select count(*) from {table} where account_id = $1", account_id
        )
        assert left == 0, f"{account_id}: {left} rows left in {table}"
    progress = {
        row["table_name"]: row["rows"]
        for row in await pool.fetch(
            "select table_name, rows from purge_progress where account_id = $1", account_id
        )
    }
    assert progress == {table: rows for table, rows in counted.items() if rows}, (
        f"{account_id}: the committed counts differ from the receipt's"
    )

    completed = await pool.fetch(
        "select product, completed_at from product_purges where account_id = $1", account_id
    )
    assert sorted(row["product"] for row in completed) == registry, account_id
    purged_events = await pool.fetch(
        "select detail->>'product' as product, (detail->>'rows')::bigint as rows"
        " from audit_events where account_id = $1 and kind = 'product_purged'",
        account_id,
    )
    products = sorted(row["product"] for row in purged_events)
    assert products == registry, f"{account_id}: product_purged events {products}"
    assert {row["product"]: row["rows"] for row in purged_events} == {
        p.product: p.rows for p in receipt.products
    }, account_id

    released_events = await pool.fetch(
        "select occurred_at from audit_events"
        " where account_id = $1 and kind = 'identifiers_released'",
        account_id,
    )
    assert len(released_events) == 1, f"{account_id}: released {len(released_events)} times"
    claims = await pool.fetch(
        "select released_at from identifier_claims where account_id = $1", account_id
    )
    assert claims and all(claim["released_at"] is not None for claim in claims), account_id
    last_purge = max(row["completed_at"] for row in completed)
    assert receipt.identifiers_released_at is not None, account_id
    assert receipt.identifiers_released_at >= last_purge, (
        f"{account_id}: identifiers released at {receipt.identifiers_released_at},"
        f" a purge completed at {last_purge}"
    )
    assert released_events[0]["occurred_at"] >= last_purge, account_id
    assert min(claim["released_at"] for claim in claims) >= last_purge, account_id
    assert (
        await pool.fetchval("select status from accounts where account_id = $1", account_id)
        == "deleted"
    ), account_id
