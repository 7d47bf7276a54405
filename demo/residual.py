"""Residual product data: leftovers of resources the account has deleted, none of them live,
which a purge removes without asking; a few rows for every scenario, many for `large`."""

from __future__ import annotations

from dataclasses import dataclass, fields

from demo.inserts import Seed


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


async def residual(seed: Seed) -> int:
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


async def large_residual(seed: Seed, sizes: DemoSizes) -> int:
    """Deleted resources with many rows each: what the `large` scenario adds to `clean`."""
    rows = 0
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
