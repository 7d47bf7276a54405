"""Other accounts' rows in the resource products' tables, so that a purged account is a small
fraction of each table, as in production: its `DELETE ... WHERE account_id = $1` then goes
through the account index, not a sequential scan of a table that is almost all its own.

Seeded once per stack, set-based (`generate_series`), under account ids `bench-bg-<n>`: one
parent row per account where the product has one, and `rows_per_account` rows in each big
table (`benchmarks.seed` puts the purged account's rows in the same tables).
"""

from __future__ import annotations

import asyncpg

ACCOUNT_PREFIX = "bench-bg-"

_ACCOUNTS = (
    "insert into accounts (account_id, status)"
    " select 'bench-bg-' || a, 'active' from generate_series(1, $1::int) a"
)

# $1 = accounts; the big tables also $2 = rows per account. Account `a`'s rows are together,
# in key order, like the purged account's.
_TABLES: tuple[tuple[str, str], ...] = (
    (
        "storage_buckets",
        "insert into storage_buckets (bucket_id, account_id, name, region, state)"
        " select 'bkt-bg-' || a, 'bench-bg-' || a, 'logs', 'eu-west-1', 'active'"
        " from generate_series(1, $1::int) a",
    ),
    (
        "storage_objects",
        "insert into storage_objects (account_id, bucket_id, object_key, size_bytes)"
        " select 'bench-bg-' || a, 'bkt-bg-' || a, 'logs/part-' || g || '.json.gz', 1024 + g"
        " from generate_series(1, $1::int) a, generate_series(1, $2::int) g",
    ),
    (
        "dns_zones",
        "insert into dns_zones (zone_id, account_id, domain, state)"
        " select 'zone-bg-' || a, 'bench-bg-' || a, 'shop' || a || '.example', 'active'"
        " from generate_series(1, $1::int) a",
    ),
    (
        "dns_records",
        "insert into dns_records (account_id, zone_id, name, record_type, value)"
        " select 'bench-bg-' || a, 'zone-bg-' || a, 'host-' || g || '.example', 'A',"
        " '198.51.100.' || (g % 254 + 1)"
        " from generate_series(1, $1::int) a, generate_series(1, $2::int) g",
    ),
    (
        "cdn_domains",
        "insert into cdn_domains (cdn_domain_id, account_id, domain, origin, state)"
        " select 'cdn-bg-' || a, 'bench-bg-' || a, 'static' || a || '.example',"
        " 'origin.example', 'online'"
        " from generate_series(1, $1::int) a",
    ),
    (
        "cdn_access_logs",
        "insert into cdn_access_logs (account_id, cdn_domain_id, requested_at, path, bytes_sent)"
        " select 'bench-bg-' || a, 'cdn-bg-' || a, now(), '/img/' || g || '.png', 4096 + g"
        " from generate_series(1, $1::int) a, generate_series(1, $2::int) g",
    ),
    (
        "compute_disks",
        "insert into compute_disks (disk_id, account_id, instance_id, size_gb, state)"
        " select 'vol-bg-' || a, 'bench-bg-' || a, null, 100, 'available'"
        " from generate_series(1, $1::int) a",
    ),
    (
        "compute_snapshots",
        "insert into compute_snapshots (account_id, disk_id, size_gb)"
        " select 'bench-bg-' || a, 'vol-bg-' || a, 100"
        " from generate_series(1, $1::int) a, generate_series(1, $2::int) g",
    ),
    (
        "db_instances",
        "insert into db_instances (db_instance_id, account_id, engine, name, state)"
        " select 'db-bg-' || a, 'bench-bg-' || a, 'postgres 16', 'prod', 'available'"
        " from generate_series(1, $1::int) a",
    ),
    (
        "db_backups",
        "insert into db_backups (account_id, db_instance_id, size_bytes)"
        " select 'bench-bg-' || a, 'db-bg-' || a, 1073741824 + g"
        " from generate_series(1, $1::int) a, generate_series(1, $2::int) g",
    ),
    (
        "elastic_ips",
        "insert into elastic_ips (eip_id, account_id, address, state)"
        " select 'eip-bg-' || a || '-' || g, 'bench-bg-' || a, '198.51.100.7', 'allocated'"
        " from generate_series(1, $1::int) a, generate_series(1, $2::int) g",
    ),
)


async def seed_background(pool: asyncpg.Pool, *, accounts: int, rows_per_account: int) -> bool:
    """Seeds `accounts` other accounts with `rows_per_account` rows in each big table, unless
    this database has them already; True when it seeded now. Then `vacuum analyze`s the
    tables, so that the planner knows how small an account's share is."""
    async with pool.acquire() as conn:
        have = await conn.fetchval(
            "select count(*) from accounts where account_id like $1 || '%'", ACCOUNT_PREFIX
        )
        if have:
            return False
        async with conn.transaction():
            await conn.execute(_ACCOUNTS, accounts)
            for _, sql in _TABLES:
                if "$2" in sql:
                    await conn.execute(sql, accounts, rows_per_account)
                else:
                    await conn.execute(sql, accounts)
        for table, _ in _TABLES:
            await conn.execute(f"vacuum analyze {table}")  # a constant name, above
    return True
