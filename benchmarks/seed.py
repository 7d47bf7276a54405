"""Accounts with residual data in the six resource products, sized per benchmark.

Every row is residual (nothing live), so a deletion runs straight through to the purge.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg

from accounts.registration import IdentifierTaken, RegistrationRequest, register_account

RESOURCE_PRODUCTS = ("object_storage", "dns", "cdn", "compute", "databases", "networking")
"""The products that hold a customer's resources, largest tables first."""

# Per product: its parent row (where it has one), then `$3` rows in its big table.
# $1 = account id, $2 = a token unique to the account, $3 = rows.
_STATEMENTS: dict[str, tuple[str | None, str]] = {
    "object_storage": (
        "insert into storage_buckets (bucket_id, account_id, name, region, state)"
        " values ('bkt-' || $2::text, $1, 'old-logs', 'eu-west-1', 'deleted')",
        "insert into storage_objects (account_id, bucket_id, object_key, size_bytes)"
        " select $1, 'bkt-' || $2::text, 'logs/part-' || g || '.json.gz', 1024 + g"
        " from generate_series(1, $3::int) g",
    ),
    "dns": (
        "insert into dns_zones (zone_id, account_id, domain, state)"
        " values ('zone-' || $2::text, $1, 'old-shop.example', 'deleted')",
        "insert into dns_records (account_id, zone_id, name, record_type, value)"
        " select $1, 'zone-' || $2::text, 'host-' || g || '.old-shop.example', 'A',"
        " '198.51.100.' || (g % 254 + 1) from generate_series(1, $3::int) g",
    ),
    "cdn": (
        "insert into cdn_domains (cdn_domain_id, account_id, domain, origin, state)"
        " values ('cdn-' || $2::text, $1, 'static.old-shop.example', 'origin.example', 'deleted')",
        "insert into cdn_access_logs (account_id, cdn_domain_id, requested_at, path, bytes_sent)"
        " select $1, 'cdn-' || $2::text, now(), '/img/' || g || '.png', 4096 + g"
        " from generate_series(1, $3::int) g",
    ),
    "compute": (
        "insert into compute_disks (disk_id, account_id, instance_id, size_gb, state)"
        " values ('vol-' || $2::text, $1, null, 100, 'deleted')",
        "insert into compute_snapshots (account_id, disk_id, size_gb)"
        " select $1, 'vol-' || $2::text, 100 from generate_series(1, $3::int) g",
    ),
    "databases": (
        "insert into db_instances (db_instance_id, account_id, engine, name, state)"
        " values ('db-' || $2::text, $1, 'postgres 16', 'staging', 'deleted')",
        "insert into db_backups (account_id, db_instance_id, size_bytes)"
        " select $1, 'db-' || $2::text, 1073741824 + g from generate_series(1, $3::int) g",
    ),
    "networking": (
        None,
        "insert into elastic_ips (eip_id, account_id, address, state)"
        " select 'eip-' || $2::text || '-' || g, $1, '198.51.100.7', 'released'"
        " from generate_series(1, $3::int) g",
    ),
}


@dataclass(frozen=True)
class SeededAccount:
    account_id: str
    rows: int
    """Rows of residual data seeded for it, across its products."""


async def seed_account(
    pool: asyncpg.Pool, *, rows_per_product: int, products: int = len(RESOURCE_PRODUCTS)
) -> SeededAccount:
    """A registered account with `rows_per_product` residual rows in each of `products`."""
    for attempt in range(5):
        token = uuid.uuid4().hex[:12]
        try:
            account = await register_account(
                pool,
                RegistrationRequest(
                    user_name=f"bench{token}",
                    email=f"bench+{token}@example.com",
                    phone="+1415" + str(2_000_000 + uuid.uuid4().int % 8_000_000),
                ),
            )
            break
        except IdentifierTaken:
            # Seven random digits (an exchange from 200): among thousands of accounts, one repeats.
            if attempt == 4:
                raise
    rows = 0
    async with pool.acquire() as conn, conn.transaction():
        for product in RESOURCE_PRODUCTS[:products]:
            parent, bulk = _STATEMENTS[product]
            if parent is not None:
                rows += _inserted(await conn.execute(parent, account.account_id, token))
            rows += _inserted(await conn.execute(bulk, account.account_id, token, rows_per_product))
    return SeededAccount(account.account_id, rows)


async def seed_accounts(
    pool: asyncpg.Pool, count: int, *, rows_per_product: int, concurrency: int = 8
) -> list[SeededAccount]:
    """`count` accounts seeded `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> SeededAccount:
        async with gate:
            return await seed_account(pool, rows_per_product=rows_per_product)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _inserted(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
