"""Demo accounts that show every path of a deletion, created idempotently.

| scenario     | what it holds                                                              |
| ------------ | -------------------------------------------------------------------------- |
| `clean`      | nothing that blocks: residual data in every product, paid bills, sessions  |
| `blocked`    | one blocking item of every prerequisite category, live resources in every  |
|              | cloud product                                                              |
| `legal_hold` | like `clean`, plus an active legal hold on Object Storage                  |
| `large`      | like `clean`, plus a few hundred thousand rows of residual product data    |

Each scenario's account is found again through its held user-name claim (`demo-<scenario>`),
so seeding twice changes nothing, and a demo account that was deleted (its claims released) is
made anew on the next seed. The account is registered first (registration runs its own
transaction); its data then goes in one transaction that ends with a `demo_seeded` audit event.
That event is the marker: an account without it (a crash between the two steps) is filled in
by the next seed; one with it is never touched again, even after a purge removed its data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields

import asyncpg

from accounts.registration import IdentifierTaken, RegistrationRequest, register_account
from store.db import Connection

logger = logging.getLogger(__name__)

SCENARIOS = ("clean", "blocked", "legal_hold", "large")

SEEDED_EVENT = "demo_seeded"
"""The audit event kind that marks a demo account's data as complete."""

LEGAL_HOLD_REASON = "Litigation hold LH-2026-0042 placed by Legal"

_PHONES = {
    "clean": "+14155550101",
    "blocked": "+14155550102",
    "legal_hold": "+14155550103",
    "large": "+14155550104",
}
_DISPLAY_NAMES = {
    "clean": "Demo Clean",
    "blocked": "Demo Blocked",
    "legal_hold": "Demo Legal Hold",
    "large": "Demo Large",
}


@dataclass(frozen=True)
class DemoSizes:
    """How many rows of residual data the `large` scenario gets, per table."""

    storage_objects: int = 200_000
    """Spread over 4 deleted buckets."""
    dns_records: int = 60_000
    """Spread over 3 deleted zones."""
    cdn_access_logs: int = 60_000
    """Spread over 2 deleted CDN domains."""
    compute_snapshots: int = 5_000
    """Spread over 5 deleted disks."""
    db_backups: int = 2_000
    """Spread over 2 deleted database instances."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"DemoSizes.{field.name} must be a whole number >= 0")

    @property
    def total(self) -> int:
        return sum(getattr(self, field.name) for field in fields(self))


DEFAULT_SIZES = DemoSizes()


class DemoAccountConflict(RuntimeError):
    """A demo identifier is held by an account that is not that scenario's demo account."""


def demo_request(scenario: str) -> RegistrationRequest:
    """The registration of a scenario's account: `demo-<scenario>`, `demo+<scenario>@...`."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown demo scenario {scenario!r}; expected one of {SCENARIOS}")
    return RegistrationRequest(
        user_name=f"demo-{scenario}",
        email=f"demo+{scenario}@example.com",
        phone=_PHONES[scenario],
        display_name=_DISPLAY_NAMES[scenario],
    )


async def seed_demo(pool: asyncpg.Pool, *, sizes: DemoSizes = DEFAULT_SIZES) -> dict[str, str]:
    """Creates the demo accounts that do not exist yet; returns every scenario's account id."""
    return {scenario: await seed_scenario(pool, scenario, sizes=sizes) for scenario in SCENARIOS}


async def seed_scenario(
    pool: asyncpg.Pool, scenario: str, *, sizes: DemoSizes = DEFAULT_SIZES
) -> str:
    """The scenario's account id, registering the account and its data if they are missing."""
    request = demo_request(scenario)
    account_id = await find_demo_account(pool, scenario)
    if account_id is None:
        try:
            account_id = (await register_account(pool, request)).account_id
        except IdentifierTaken as taken:
            # A concurrent seed registered it first; or an identifier is held by another account.
            account_id = await find_demo_account(pool, scenario)
            if account_id is None:
                raise DemoAccountConflict(
                    f"cannot create the {scenario} demo account: {taken}"
                ) from taken
    await _fill(pool, scenario, account_id, sizes)
    return account_id


async def find_demo_account(pool: asyncpg.Pool, scenario: str) -> str | None:
    """The account holding the scenario's user name, email and phone; None if none holds any.

    Raises DemoAccountConflict when some of them are held, but not all three by one account.
    """
    request = demo_request(scenario)
    rows = await pool.fetch(
        """
        select account_id, count(*) as held from identifier_claims
        where released_at is null
          and ((kind = 'user_name' and normalized_value = $1)
            or (kind = 'email' and normalized_value = $2)
            or (kind = 'phone' and normalized_value = $3))
        group by account_id order by account_id
        """,
        request.user_name,
        request.email,
        request.phone,
    )
    if not rows:
        return None
    if len(rows) == 1 and rows[0]["held"] == 3:
        return str(rows[0]["account_id"])
    holders = ", ".join(row["account_id"] for row in rows)
    raise DemoAccountConflict(
        f"the {scenario} demo identifiers are held by other accounts ({holders}): "
        "delete those accounts or seed into another database"
    )


async def _fill(pool: asyncpg.Pool, scenario: str, account_id: str, sizes: DemoSizes) -> None:
    """Inserts the scenario's data in one transaction, unless it is there already."""
    started = time.monotonic()
    async with pool.acquire() as conn, conn.transaction():
        # The account's row lock serialises concurrent seeds (and a freeze) of this account.
        status = await conn.fetchval(
            "select status from accounts where account_id = $1 for update", account_id
        )
        seeded = await conn.fetchval(
            "select 1 from audit_events where account_id = $1 and kind = $2 limit 1",
            account_id,
            SEEDED_EVENT,
        )
        if seeded:
            return
        if status != "active":
            # Registered, never filled, and now under deletion: leave it alone.
            logger.warning("demo account %s is %s: its data is not seeded", account_id, status)
            return
        rows = await _BUILDERS[scenario](_Seed(conn, account_id, scenario), sizes)
        await _mark_seeded(conn, account_id, scenario, rows)
    logger.info(
        "seeded demo scenario %s as %s: %d rows in %.1f s",
        scenario,
        account_id,
        rows,
        time.monotonic() - started,
    )


async def _mark_seeded(conn: Connection, account_id: str, scenario: str, rows: int) -> None:
    await conn.execute(
        """
        insert into audit_events (account_id, kind, detail)
        values ($1, $2, jsonb_build_object('scenario', $3::text, 'rows', $4::bigint))
        """,
        account_id,
        SEEDED_EVENT,
        scenario,
        rows,
    )


@dataclass(frozen=True)
class _Seed:
    """One scenario being seeded: ids are `<kind>-<token>-<name>`, unique to the account."""

    conn: Connection
    account_id: str
    scenario: str

    @property
    def token(self) -> str:
        return self.account_id.removeprefix("acct-")

    async def run(self, sql: str, *args: object) -> int:
        """Runs an insert with `$1` = account id, `$2` = token, then `args`; returns its rows."""
        return _inserted(await self.conn.execute(sql, self.account_id, self.token, *args))

    async def run_for_account(self, sql: str, *args: object) -> int:
        """Runs an insert with `$1` = account id, then `args` (no token); returns its rows."""
        return _inserted(await self.conn.execute(sql, self.account_id, *args))


def _inserted(status: str) -> int:
    """The row count of an `INSERT 0 <rows>` status tag."""
    return int(status.rsplit(" ", 1)[-1])


# --- what every scenario has ---------------------------------------------------------------------


async def _sign_in_and_billing(seed: _Seed, *, funds_cents: int = 0) -> int:
    """Sessions, API keys, a balance, paid bills, a fulfilled contract, an ended partnership."""
    rows = await seed.run(
        """
        insert into sessions (session_id, account_id, user_agent, created_at, expires_at)
        values (md5('session-' || $2::text || '-browser')::uuid, $1,
                'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605',
                now() - interval '2 hours', now() + interval '28 days'),
               (md5('session-' || $2::text || '-cli')::uuid, $1, 'cloud-cli/2.14 (linux; amd64)',
                now() - interval '40 days', now() - interval '10 days')
        """
    )
    rows += await seed.run(
        """
        insert into api_keys (key_id, account_id, description, secret_hash, created_at, revoked_at)
        values ('ak-' || $2::text || '-ci', $1, 'CI deploy key',
                sha256(convert_to(gen_random_uuid()::text, 'UTF8')),
                now() - interval '90 days', null),
               ('ak-' || $2::text || '-laptop', $1, 'old laptop',
                sha256(convert_to(gen_random_uuid()::text, 'UTF8')),
                now() - interval '400 days', now() - interval '200 days')
        """
    )
    rows += await seed.run_for_account(
        "insert into account_balances (account_id, funds_cents) values ($1, $2::bigint)",
        funds_cents,
    )
    rows += await seed.run(
        """
        insert into bills (bill_id, account_id, period, amount_cents, status, billed_to, issued_at)
        select 'bill-' || $2::text || '-' || period, $1, period, amount, 'paid', $3::text,
               to_date(period, 'YYYY-MM') + interval '1 month 2 days'
        from (values ('2026-06', 1290), ('2026-07', 4315), ('2026-08', 2870)) as b (period, amount)
        """,
        _DISPLAY_NAMES[seed.scenario],
    )
    rows += await seed.run(
        """
        insert into contracts (contract_id, account_id, title, status, ends_on)
        values ('ctr-' || $2::text || '-pilot', $1, 'Pilot programme 2025', 'fulfilled',
                date '2025-12-31')
        """
    )
    rows += await seed.run(
        """
        insert into partner_relationships
            (relationship_id, account_id, kind, counterparty, status, started_at, ended_at)
        values ('rel-' || $2::text || '-former', $1, 'partner', 'Fabrikam Migration Services',
                'ended', now() - interval '500 days', now() - interval '120 days')
        """
    )
    return rows


async def _residual(seed: _Seed) -> int:
    """Leftovers in every product, none of them live: what a purge removes without asking."""
    statements = [
        # compute
        """
        insert into compute_instances
            (instance_id, account_id, region, name, machine_type, state, created_at)
        select 'i-' || $2::text || '-old' || n, $1, 'eu-west-1', 'batch-' || n, 'c6.xlarge',
               'terminated', now() - n * interval '90 days'
        from generate_series(1, 2) n
        """,
        """
        insert into compute_disks (disk_id, account_id, instance_id, size_gb, state, created_at)
        select 'vol-' || $2::text || '-old' || n, $1, 'i-' || $2::text || '-old' || n, 50 * n,
               'deleted', now() - n * interval '90 days'
        from generate_series(1, 2) n
        """,
        """
        insert into compute_snapshots (account_id, disk_id, size_gb, created_at)
        select $1, 'vol-' || $2::text || '-old' || (n % 2 + 1), 50 * (n % 2 + 1),
               now() - n * interval '7 days'
        from generate_series(1, 3) n
        """,
        # object storage
        """
        insert into storage_buckets (bucket_id, account_id, name, region, state, created_at)
        values ('bkt-' || $2::text || '-old', $1, 'old-website', 'eu-west-1', 'deleted',
                now() - interval '300 days')
        """,
        """
        insert into storage_objects (account_id, bucket_id, object_key, size_bytes, created_at)
        select $1, 'bkt-' || $2::text || '-old', 'site/page-' || n || '.html', 2048 * n,
               now() - interval '300 days'
        from generate_series(1, 5) n
        """,
        # databases
        """
        insert into db_instances (db_instance_id, account_id, engine, name, state, created_at)
        values ('db-' || $2::text || '-old', $1, 'postgres 14', 'staging', 'deleted',
                now() - interval '250 days')
        """,
        """
        insert into db_backups (account_id, db_instance_id, size_bytes, created_at)
        select $1, 'db-' || $2::text || '-old', 734003200 + n, now() - n * interval '1 day'
        from generate_series(1, 2) n
        """,
        # networking
        """
        insert into elastic_ips (eip_id, account_id, address, state, created_at)
        values ('eip-' || $2::text || '-old', $1, '198.51.100.23', 'released',
                now() - interval '200 days')
        """,
        """
        insert into load_balancers (lb_id, account_id, name, state, created_at)
        values ('lb-' || $2::text || '-old', $1, 'staging-lb', 'deleted',
                now() - interval '200 days')
        """,
        # DNS
        """
        insert into dns_zones (zone_id, account_id, domain, state, created_at)
        values ('zone-' || $2::text || '-old', $1, 'old-shop.example', 'deleted',
                now() - interval '365 days')
        """,
        """
        insert into dns_records (account_id, zone_id, name, record_type, value)
        values ($1, 'zone-' || $2::text || '-old', 'old-shop.example', 'A', '198.51.100.23'),
               ($1, 'zone-' || $2::text || '-old', 'www.old-shop.example', 'CNAME',
                'old-shop.example'),
               ($1, 'zone-' || $2::text || '-old', 'old-shop.example', 'MX',
                '10 mail.old-shop.example'),
               ($1, 'zone-' || $2::text || '-old', 'old-shop.example', 'TXT', 'v=spf1 -all')
        """,
        # CDN
        """
        insert into cdn_domains (cdn_domain_id, account_id, domain, origin, state, created_at)
        values ('cdn-' || $2::text || '-old', $1, 'static.old-shop.example',
                'old-website.storage.example', 'deleted', now() - interval '365 days')
        """,
        """
        insert into cdn_access_logs (account_id, cdn_domain_id, requested_at, path, bytes_sent)
        select $1, 'cdn-' || $2::text || '-old', now() - interval '370 days' + n * interval '1 h',
               '/img/logo-' || n || '.png', 4096 + n
        from generate_series(1, 10) n
        """,
    ]
    rows = 0
    for sql in statements:
        rows += await seed.run(sql)
    return rows


# --- the scenarios -------------------------------------------------------------------------------


async def _clean(seed: _Seed, sizes: DemoSizes) -> int:
    return await _sign_in_and_billing(seed) + await _residual(seed)


async def _blocked(seed: _Seed, sizes: DemoSizes) -> int:
    rows = await _sign_in_and_billing(seed, funds_cents=12_345) + await _residual(seed)
    statements = [
        # cloud products: something live in each
        """
        insert into compute_instances (instance_id, account_id, region, name, machine_type, state)
        values ('i-' || $2::text || '-web', $1, 'eu-west-1', 'web-1', 'm6.large', 'running')
        """,
        """
        insert into compute_disks (disk_id, account_id, instance_id, size_gb, state)
        values ('vol-' || $2::text || '-web', $1, 'i-' || $2::text || '-web', 100, 'attached')
        """,
        """
        insert into storage_buckets (bucket_id, account_id, name, region, state)
        values ('bkt-' || $2::text || '-assets', $1, 'shop-assets', 'eu-west-1', 'active')
        """,
        """
        insert into storage_objects (account_id, bucket_id, object_key, size_bytes)
        select $1, 'bkt-' || $2::text || '-assets', 'img/product-' || n || '.webp', 30000 + n
        from generate_series(1, 3) n
        """,
        """
        insert into db_instances (db_instance_id, account_id, engine, name, state)
        values ('db-' || $2::text || '-orders', $1, 'postgres 16', 'orders', 'available')
        """,
        """
        insert into elastic_ips (eip_id, account_id, address, state)
        values ('eip-' || $2::text || '-web', $1, '203.0.113.10', 'allocated')
        """,
        """
        insert into load_balancers (lb_id, account_id, name, state)
        values ('lb-' || $2::text || '-web', $1, 'web-lb', 'active')
        """,
        """
        insert into dns_zones (zone_id, account_id, domain, state)
        values ('zone-' || $2::text || '-shop', $1, 'shop.example', 'active')
        """,
        """
        insert into dns_records (account_id, zone_id, name, record_type, value)
        values ($1, 'zone-' || $2::text || '-shop', 'shop.example', 'A', '203.0.113.10'),
               ($1, 'zone-' || $2::text || '-shop', 'static.shop.example', 'CNAME',
                'static.shop.example.cdn.example')
        """,
        """
        insert into cdn_domains (cdn_domain_id, account_id, domain, origin, state)
        values ('cdn-' || $2::text || '-static', $1, 'static.shop.example',
                'shop-assets.storage.example', 'online')
        """,
        # business
        """
        insert into group_memberships (group_id, account_id, role)
        values ('grp-' || $2::text, $1, 'owner')
        """,
        """
        insert into partner_relationships (relationship_id, account_id, kind, counterparty, status)
        values ('rel-' || $2::text || '-reseller', $1, 'reseller',
                'Northwind Cloud Resellers Ltd.', 'active'),
               ('rel-' || $2::text || '-partner', $1, 'partner', 'Contoso Consulting', 'active')
        """,
        """
        insert into contracts (contract_id, account_id, title, status, ends_on)
        values ('ctr-' || $2::text || '-support', $1, 'Enterprise Support 2026', 'active',
                date '2026-12-31')
        """,
        """
        insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)
        values ('bill-' || $2::text || '-2026-09', $1, '2026-09', 4200, 'unpaid',
                'Demo Blocked')
        """,
    ]
    # The group is not the account's own row: it is named after it, and outlives it.
    rows += _inserted(
        await seed.conn.execute(
            "insert into account_groups (group_id, name) values ($1, 'Demo Blocked Engineering')",
            f"grp-{seed.token}",
        )
    )
    for sql in statements:
        rows += await seed.run(sql)
    return rows


async def _legal_hold(seed: _Seed, sizes: DemoSizes) -> int:
    rows = await _clean(seed, sizes)
    rows += await seed.run(
        """
        insert into storage_buckets (bucket_id, account_id, name, region, state, created_at)
        select 'bkt-' || $2::text || '-evidence-' || b, $1, 'contracts-archive-' || b,
               'eu-central-1', 'deleted', now() - interval '180 days'
        from generate_series(1, 2) b
        """
    )
    rows += await seed.run(
        """
        insert into storage_objects (account_id, bucket_id, object_key, size_bytes, created_at)
        select $1, 'bkt-' || $2::text || '-evidence-' || (n % 2 + 1),
               'contracts/2025/contract-' || lpad(n::text, 4, '0') || '.pdf', 180000 + 37 * n,
               now() - interval '200 days' + n * interval '1 day'
        from generate_series(1, 40) n
        """
    )
    rows += await seed.run_for_account(
        """
        insert into legal_holds (account_id, product, reason, placed_at)
        values ($1, 'object_storage', $2::text, now() - interval '14 days')
        """,
        LEGAL_HOLD_REASON,
    )
    return rows


async def _large(seed: _Seed, sizes: DemoSizes) -> int:
    rows = await _clean(seed, sizes)
    statements: list[tuple[str, tuple[int, ...]]] = [
        # object storage: deleted buckets full of objects
        (
            """
            insert into storage_buckets (bucket_id, account_id, name, region, state, created_at)
            select 'bkt-' || $2::text || '-archive-' || b, $1, 'log-archive-' || b,
                   'eu-west-1', 'deleted', now() - interval '400 days'
            from generate_series(1, 4) b
            """,
            (),
        ),
        (
            """
            insert into storage_objects (account_id, bucket_id, object_key, size_bytes, created_at)
            select $1, 'bkt-' || $2::text || '-archive-' || (g % 4 + 1),
                   'logs/' || to_char(date '2025-01-01' + g % 365, 'YYYY/MM/DD') || '/part-'
                       || lpad(g::text, 7, '0') || '.json.gz',
                   1024 + (g::bigint * 7919) % 1048576,
                   now() - interval '400 days' + (g % 365) * interval '1 day'
            from generate_series(1, $3::int) g
            """,
            (sizes.storage_objects,),
        ),
        # DNS: deleted zones with many records
        (
            """
            insert into dns_zones (zone_id, account_id, domain, state, created_at)
            select 'zone-' || $2::text || '-legacy-' || z, $1, 'legacy-' || z || '.example',
                   'deleted', now() - interval '500 days'
            from generate_series(1, 3) z
            """,
            (),
        ),
        (
            """
            insert into dns_records (account_id, zone_id, name, record_type, value, ttl)
            select $1, 'zone-' || $2::text || '-legacy-' || (g % 3 + 1),
                   'host-' || g || '.legacy-' || (g % 3 + 1) || '.example',
                   (array['A', 'AAAA', 'CNAME', 'TXT'])[g % 4 + 1],
                   case g % 4
                       when 0 then '198.51.100.' || (g % 254 + 1)
                       when 1 then '2001:db8::' || to_hex(g)
                       when 2 then 'edge-' || (g % 50) || '.legacy.example'
                       else 'v=verify-' || md5(g::text)
                   end,
                   300 * (g % 4 + 1)
            from generate_series(1, $3::int) g
            """,
            (sizes.dns_records,),
        ),
        # CDN: deleted domains with their access logs
        (
            """
            insert into cdn_domains (cdn_domain_id, account_id, domain, origin, state, created_at)
            select 'cdn-' || $2::text || '-media-' || d, $1, 'media-' || d || '.legacy-1.example',
                   'log-archive-' || d || '.storage.example', 'deleted', now() - interval '500 days'
            from generate_series(1, 2) d
            """,
            (),
        ),
        (
            """
            insert into cdn_access_logs (account_id, cdn_domain_id, requested_at, path, bytes_sent)
            select $1, 'cdn-' || $2::text || '-media-' || (g % 2 + 1),
                   now() - interval '450 days' + g * interval '13 seconds',
                   '/video/clip-' || (g % 5000) || '/segment-' || (g % 120) || '.ts',
                   65536 + (g::bigint * 104729) % 4194304
            from generate_series(1, $3::int) g
            """,
            (sizes.cdn_access_logs,),
        ),
        # compute: snapshots of deleted disks
        (
            """
            insert into compute_disks (disk_id, account_id, instance_id, size_gb, state, created_at)
            select 'vol-' || $2::text || '-data-' || d, $1, null, 200 * d, 'deleted',
                   now() - interval '450 days'
            from generate_series(1, 5) d
            """,
            (),
        ),
        (
            """
            insert into compute_snapshots (account_id, disk_id, size_gb, created_at)
            select $1, 'vol-' || $2::text || '-data-' || (g % 5 + 1), 200 * (g % 5 + 1),
                   now() - interval '450 days' + g * interval '2 hours'
            from generate_series(1, $3::int) g
            """,
            (sizes.compute_snapshots,),
        ),
        # databases: backups of deleted instances
        (
            """
            insert into db_instances (db_instance_id, account_id, engine, name, state, created_at)
            select 'db-' || $2::text || '-legacy-' || d, $1, 'mysql 8.0', 'legacy-' || d,
                   'deleted', now() - interval '600 days'
            from generate_series(1, 2) d
            """,
            (),
        ),
        (
            """
            insert into db_backups (account_id, db_instance_id, size_bytes, created_at)
            select $1, 'db-' || $2::text || '-legacy-' || (g % 2 + 1),
                   1073741824 + g::bigint * 4096,
                   now() - interval '600 days' + g * interval '6 hours'
            from generate_series(1, $3::int) g
            """,
            (sizes.db_backups,),
        ),
    ]
    for sql, args in statements:
        rows += await seed.run(sql, *args)
    return rows


_BUILDERS: dict[str, Callable[[_Seed, DemoSizes], Awaitable[int]]] = {
    "clean": _clean,
    "blocked": _blocked,
    "legal_hold": _legal_hold,
    "large": _large,
}
