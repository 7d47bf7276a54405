"""The demo scenarios: who each demo account is, and what each holds besides its registration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from accounts.registration import RegistrationRequest
from demo.inserts import Seed, inserted
from demo.residual import DemoSizes, large_residual, residual

SCENARIOS = ("clean", "blocked", "legal_hold", "large")

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


async def _sign_in_and_billing(seed: Seed, *, funds_cents: int = 0) -> int:
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


async def _clean(seed: Seed, sizes: DemoSizes) -> int:
    return await _sign_in_and_billing(seed) + await residual(seed)


async def _blocked(seed: Seed, sizes: DemoSizes) -> int:
    rows = await _sign_in_and_billing(seed, funds_cents=12_345) + await residual(seed)
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
    rows += inserted(
        await seed.conn.execute(
            "insert into account_groups (group_id, name) values ($1, 'Demo Blocked Engineering')",
            f"grp-{seed.token}",
        )
    )
    for sql in statements:
        rows += await seed.run(sql)
    return rows


async def _legal_hold(seed: Seed, sizes: DemoSizes) -> int:
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


async def _large(seed: Seed, sizes: DemoSizes) -> int:
    return await _clean(seed, sizes) + await large_residual(seed, sizes)


BUILDERS: dict[str, Callable[[Seed, DemoSizes], Awaitable[int]]] = {
    "clean": _clean,
    "blocked": _blocked,
    "legal_hold": _legal_hold,
    "large": _large,
}
"""What each scenario inserts after the registration; returns the rows inserted."""
