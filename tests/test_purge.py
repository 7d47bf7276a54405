"""The purge of one product, and the release of identifiers that waits for every purge.

Activities run in `ActivityEnvironment` (heartbeats observed, heartbeat details given as a
retry would get them, cancellation standing in for a crashed worker) against real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from accounts.registration import IdentifierTaken, RegistrationRequest, register_account
from activities.account import AccountActivities
from activities.purge import PurgeActivities
from contract.models import AccountRef, ProductReceipt, PurgeProductInput
from contract.names import workflow_id_for
from registry.catalog import Catalog
from registry.products import PRODUCTS, PRODUCTS_BY_NAME, PurgeMethod

Seeded = dict[str, dict[str, int]]
"""Rows seeded per product and table."""


def _request(n: int) -> RegistrationRequest:
    tag = uuid.uuid4().hex[:10]
    return RegistrationRequest(
        user_name=f"user{tag}",
        email=f"user{tag}@example.com",
        phone=f"+1415{200 + n:03d}{uuid.uuid4().int % 10000:04d}",
    )


async def _account(pool: asyncpg.Pool, n: int = 0) -> str:
    return (await register_account(pool, _request(n))).account_id


async def seed_every_table(pool: asyncpg.Pool, a: str, n: int = 3) -> Seeded:
    """Residual data (nothing live) in every table of every product: `n` rows of most, with
    the references between them (snapshots of disks of instances, objects in buckets, ...)."""
    statements = {
        "compute": {
            "compute_instances": """insert into compute_instances
                select $1 || '-i' || g, $1, 'eu-west-1', 'vm' || g, 'e2-small', 'terminated'
                from generate_series(1, $2) g""",
            "compute_disks": """insert into compute_disks (disk_id, account_id, instance_id,
                    size_gb, state)
                select $1 || '-d' || g, $1, $1 || '-i' || g, 10, 'deleted'
                from generate_series(1, $2) g""",
            "compute_snapshots": """insert into compute_snapshots (account_id, disk_id, size_gb)
                select $1, $1 || '-d' || g, 10 from generate_series(1, $2) g""",
        },
        "object_storage": {
            "storage_buckets": """insert into storage_buckets
                select $1 || '-b' || g, $1, 'bucket' || g, 'eu-west-1', 'deleted'
                from generate_series(1, $2) g""",
            "storage_objects": """insert into storage_objects (account_id, bucket_id, object_key,
                    size_bytes)
                select $1, $1 || '-b' || (g % $2 + 1), 'k' || g, g
                from generate_series(1, $2 * 10) g""",
        },
        "databases": {
            "db_instances": """insert into db_instances
                select $1 || '-db' || g, $1, 'postgres', 'db' || g, 'deleted'
                from generate_series(1, $2) g""",
            "db_backups": """insert into db_backups (account_id, db_instance_id, size_bytes)
                select $1, $1 || '-db' || g, 100 from generate_series(1, $2) g""",
        },
        "networking": {
            "elastic_ips": """insert into elastic_ips
                select $1 || '-eip' || g, $1, ('198.51.100.' || g)::inet, 'released'
                from generate_series(1, $2) g""",
            "load_balancers": """insert into load_balancers
                select $1 || '-lb' || g, $1, 'lb' || g, 'deleted' from generate_series(1, $2) g""",
        },
        "dns": {
            "dns_zones": """insert into dns_zones
                select $1 || '-z' || g, $1, 'zone' || g || '.example', 'deleted'
                from generate_series(1, $2) g""",
            "dns_records": """insert into dns_records (account_id, zone_id, name, record_type,
                    value)
                select $1, $1 || '-z' || g, 'www', 'A', '198.51.100.1'
                from generate_series(1, $2) g""",
        },
        "cdn": {
            "cdn_domains": """insert into cdn_domains
                select $1 || '-cdn' || g, $1, 'cdn' || g || '.example', 'origin.example',
                    'deleted'
                from generate_series(1, $2) g""",
            "cdn_access_logs": """insert into cdn_access_logs (account_id, cdn_domain_id,
                    requested_at, path, bytes_sent)
                select $1, $1 || '-cdn' || g, now(), '/index.html', 512
                from generate_series(1, $2) g""",
        },
        "billing": {
            "bills": """insert into bills (bill_id, account_id, period, amount_cents, status,
                    billed_to)
                select $1 || '-bill' || g, $1, '2026-' || lpad(g::text, 2, '0'), 1000 + g,
                    'paid', 'Jane Doe'
                from generate_series(1, $2) g""",
            "contracts": """insert into contracts
                select $1 || '-c' || g, $1, 'contract ' || g, 'fulfilled', null
                from generate_series(1, $2) g""",
            "account_balances": """insert into account_balances (account_id, funds_cents)
                select $1, 0 from generate_series(1, least($2, 1))""",
        },
        "organizations": {
            "group_memberships": """insert into group_memberships (group_id, account_id, role)
                select 'group' || g, $1, 'member' from generate_series(1, $2) g""",
            "partner_relationships": """insert into partner_relationships (relationship_id,
                    account_id, kind, counterparty, status, ended_at)
                select $1 || '-r' || g, $1, 'agent', 'Agency ' || g, 'ended', now()
                from generate_series(1, $2) g""",
        },
        "sign_in": {
            "sessions": """insert into sessions (session_id, account_id, expires_at)
                select gen_random_uuid(), $1, now() from generate_series(1, $2) g""",
            "api_keys": """insert into api_keys (key_id, account_id, secret_hash)
                select $1 || '-key' || g, $1, '\\x00' from generate_series(1, $2) g""",
            "verification_challenges": """insert into verification_challenges (challenge_id,
                    account_id, workflow_id, channel, salt, code_hash, expires_at, attempts_left)
                select md5($1 || g)::uuid, $1, 'wf', 'sms', '\\x00', '\\x00', now(), 0
                from generate_series(1, $2) g""",
            "verification_attempts": """insert into verification_attempts (attempt_id,
                    account_id, challenge_id, outcome, attempts_left)
                select gen_random_uuid(), $1, md5($1 || g)::uuid, 'wrong', 0
                from generate_series(1, $2) g""",
        },
    }
    declared = {p.name: {t.table for t in p.tables} for p in PRODUCTS}
    assert {p: set(t) for p, t in statements.items()} == declared, "seed every declared table"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "insert into account_groups select 'group' || g, 'Group ' || g"
            " from generate_series(1, $1) g on conflict do nothing",
            n,
        )
        for tables in statements.values():
            for sql in tables.values():
                await conn.execute(sql, a, n)
    return {
        product: {table: await _count(pool, table, a) for table in tables}
        for product, tables in statements.items()
    }


async def _count(pool: asyncpg.Pool, table: str, account_id: str) -> int:
    count: int = await pool.fetchval(
        f"select count(*) from {table} where account_id = $1", account_id
    )
    return count


async def _digest(pool: asyncpg.Pool, account_id: str) -> dict[str, str | None]:
    """The content of every declared table's rows of one account."""
    return {
        table.table: await pool.fetchval(
            f"select md5(string_agg(t::text, '|' order by t::text)) from {table.table} t"
            " where account_id = $1",
            account_id,
        )
        for product in PRODUCTS
        for table in product.tables
    }


def _env(
    heartbeat_details: Sequence[Any] = (), heartbeats: list[int] | None = None
) -> ActivityEnvironment:
    """An activity context as a (re)try gets it: with the last heartbeat's details."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=list(heartbeat_details))
    if heartbeats is not None:
        env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    return env


async def purge(
    pool: asyncpg.Pool,
    account_id: str,
    product: str,
    *,
    batch_size: int = 5000,
    env: ActivityEnvironment | None = None,
    heartbeat_after: timedelta = timedelta(0),
) -> ProductReceipt:
    """Heartbeats after every batch unless told otherwise: the tests crash it at heartbeats."""
    request = PurgeProductInput(
        account_id=account_id, workflow_id=workflow_id_for(account_id), product=product
    )
    activities = PurgeActivities(
        pool, Catalog(), batch_size=batch_size, heartbeat_after=heartbeat_after
    )
    return await (env or _env()).run(activities.purge_product, request)


def _rows(receipt: ProductReceipt) -> dict[str, int]:
    return {table.table: table.rows for table in receipt.tables}


async def _progress(pool: asyncpg.Pool, account_id: str, product: str) -> dict[str, int]:
    rows = await pool.fetch(
        "select table_name, rows from purge_progress where account_id = $1 and product = $2",
        account_id,
        product,
    )
    return {row["table_name"]: row["rows"] for row in rows}


# --- what a purge removes ------------------------------------------------------------------------


async def test_purging_every_product_removes_exactly_the_accounts_rows(pool: asyncpg.Pool) -> None:
    account_id, other = await _account(pool, 1), await _account(pool, 2)
    seeded = await seed_every_table(pool, account_id)
    other_seeded = await seed_every_table(pool, other)
    other_before = await _digest(pool, other)

    # In parallel, as the workflow runs them; children before parents within each product.
    receipts = await asyncio.gather(*(purge(pool, account_id, p.name) for p in PRODUCTS))

    for product, receipt in zip(PRODUCTS, receipts, strict=True):
        assert receipt.product == product.name
        assert receipt.verified_clean
        assert _rows(receipt) == seeded[product.name]
        assert [t.table for t in receipt.tables] == [t.table for t in product.tables]
        assert {t.table: t.method for t in receipt.tables} == {
            t.table: t.method.value for t in product.tables
        }
        assert all(rows > 0 for rows in _rows(receipt).values()), "every table had data"
    for product in PRODUCTS:
        for table in product.tables:
            left = await _count(pool, table.table, account_id)
            expected = (
                seeded[product.name][table.table] if table.method is PurgeMethod.ANONYMISE else 0
            )
            assert left == expected, table.table
    assert await _digest(pool, other) == other_before, "another account's rows were touched"
    assert await seed_counts(pool, other) == other_seeded


async def seed_counts(pool: asyncpg.Pool, account_id: str) -> Seeded:
    return {
        p.name: {t.table: await _count(pool, t.table, account_id) for t in p.tables}
        for p in PRODUCTS
    }


async def test_anonymised_bills_keep_amount_and_period_but_not_who_was_billed(
    pool: asyncpg.Pool,
) -> None:
    account_id, other = await _account(pool, 1), await _account(pool, 2)
    await seed_every_table(pool, account_id)
    await seed_every_table(pool, other)
    kept = "select bill_id, period, amount_cents, currency, status from bills where account_id = $1"
    before = await pool.fetch(kept + " order by bill_id", account_id)

    receipt = await purge(pool, account_id, "billing", batch_size=2)

    assert _rows(receipt)["bills"] == len(before) == 3
    assert await pool.fetch(kept + " order by bill_id", account_id) == before
    assert await pool.fetchval(
        "select count(*) from bills where account_id = $1"
        " and billed_to is null and anonymised_at is not null",
        account_id,
    ) == len(before)
    assert (
        await pool.fetchval(
            "select count(*) from bills where account_id = $1"
            " and billed_to = 'Jane Doe' and anonymised_at is null",
            other,
        )
        == 3
    )


async def test_an_unknown_product_is_refused_for_good(pool: asyncpg.Pool) -> None:
    account_id = await _account(pool)
    with pytest.raises(ApplicationError) as refused:
        await purge(pool, account_id, "mainframe")
    assert refused.value.type == "UnknownProduct" and refused.value.non_retryable


# --- exactly once --------------------------------------------------------------------------------


async def test_purging_again_changes_nothing_and_returns_the_same_receipt(
    pool: asyncpg.Pool,
) -> None:
    account_id = await _account(pool)
    seeded = await seed_every_table(pool, account_id)
    first = {p.name: await purge(pool, account_id, p.name) for p in PRODUCTS}
    progress = {p.name: await _progress(pool, account_id, p.name) for p in PRODUCTS}
    bills = await pool.fetch(
        "select * from bills where account_id = $1 order by bill_id", account_id
    )

    again = {p.name: await purge(pool, account_id, p.name) for p in PRODUCTS}

    assert again == first
    for name, receipt in again.items():
        assert _rows(receipt) == seeded[name]
        assert await _progress(pool, account_id, name) == progress[name]
    assert (
        await pool.fetch("select * from bills where account_id = $1 order by bill_id", account_id)
        == bills
    ), "bills anonymised a second time"
    events = await pool.fetch(
        "select detail from audit_events where account_id = $1 and kind = 'product_purged'",
        account_id,
    )
    assert Counter(e["detail"]["product"] for e in events) == {p.name: 1 for p in PRODUCTS}
    assert all(e["detail"]["rows"] == sum(seeded[e["detail"]["product"]].values()) for e in events)
    assert await pool.fetchval(
        "select count(*) from product_purges where account_id = $1 and verified_clean", account_id
    ) == len(PRODUCTS)


async def test_a_resumed_purge_goes_back_to_a_passed_table_that_still_holds_rows(
    pool: asyncpg.Pool,
) -> None:
    """Heartbeat details say table 1 was reached, yet table 0 still has rows (written late):
    the resumed purge starts at table 0, so that no child row is left to block its parent's
    delete. Nothing is left, and every row is counted once."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=4))["dns"]
    product = PRODUCTS_BY_NAME["dns"]
    assert [t.table for t in product.tables] == ["dns_records", "dns_zones"]
    heartbeats: list[int] = []

    receipt = await purge(
        pool, account_id, "dns", batch_size=3, env=_env([1], heartbeats=heartbeats)
    )

    # One pass from table 0 (3 + 1 rows), then table 1 (3 + 1 rows).
    assert heartbeats == [0, 0, 1, 1]
    assert _rows(receipt) == seeded
    assert receipt.verified_clean
    assert await _count(pool, "dns_records", account_id) == 0
    assert await _count(pool, "dns_zones", account_id) == 0


async def test_a_short_purge_sends_no_heartbeat(pool: asyncpg.Pool) -> None:
    """Each heartbeat is a write to Temporal's persistence: an account purged in well under a
    second (each table in a batch or two) costs none; its retry would redo that second."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=4))["networking"]
    heartbeats: list[int] = []

    receipt = await purge(
        pool,
        account_id,
        "networking",
        batch_size=3,
        env=_env(heartbeats=heartbeats),
        heartbeat_after=timedelta(minutes=5),
    )

    assert heartbeats == []
    assert _rows(receipt) == seeded


async def test_a_purge_heartbeats_within_a_quarter_of_its_heartbeat_timeout(
    pool: asyncpg.Pool,
) -> None:
    account_id = await _account(pool)
    await seed_every_table(pool, account_id, n=4)
    heartbeats: list[int] = []
    env = _env(heartbeats=heartbeats)
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(milliseconds=4))

    await purge(pool, account_id, "dns", batch_size=1, env=env, heartbeat_after=timedelta(hours=1))

    assert heartbeats, "no heartbeat though the quiet start exceeded the heartbeat timeout"
    assert heartbeats[-1] == 1


async def test_a_resumed_purge_does_not_revisit_tables_already_done(pool: asyncpg.Pool) -> None:
    """The common case: an earlier attempt purged table 0 and died in table 1."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=4))["compute"]
    heartbeats: list[int] = []
    crashed = _env(heartbeats=heartbeats)

    def crash_in_disks(index: int) -> None:
        heartbeats.append(index)
        if index == 1:
            crashed.cancel()

    crashed.on_heartbeat = crash_in_disks
    with pytest.raises(asyncio.CancelledError):
        await purge(pool, account_id, "compute", batch_size=2, env=crashed)
    assert heartbeats == [0, 0, 0, 1]  # snapshots 2 + 2 + 0, disks 2, then the crash
    assert await _count(pool, "compute_snapshots", account_id) == 0
    assert await _count(pool, "compute_disks", account_id) == 2

    resumed: list[int] = []
    receipt = await purge(
        pool, account_id, "compute", batch_size=2, env=_env([heartbeats[-1]], heartbeats=resumed)
    )

    assert 0 not in resumed and resumed[0] == 1
    assert _rows(receipt) == seeded
    assert sum(await seed_counts_of(pool, account_id, "compute")) == 0


async def test_a_snapshot_written_late_does_not_block_its_disks_delete_on_resume(
    pool: asyncpg.Pool,
) -> None:
    """A crash in compute_disks, then a product writes a snapshot of a remaining disk: the
    resumed purge must take the snapshot first, or the disk's delete breaks its foreign key."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=4))["compute"]
    crashed = _env()

    def crash_in_disks(index: int) -> None:
        if index == 1:
            crashed.cancel()

    crashed.on_heartbeat = crash_in_disks
    with pytest.raises(asyncio.CancelledError):
        await purge(pool, account_id, "compute", batch_size=2, env=crashed)
    disk = await pool.fetchval(
        "select disk_id from compute_disks where account_id = $1 limit 1", account_id
    )
    await pool.execute(
        "insert into compute_snapshots (account_id, disk_id, size_gb) values ($1, $2, 10)",
        account_id,
        disk,
    )

    receipt = await purge(pool, account_id, "compute", batch_size=2, env=_env([1]))

    counted = _rows(receipt)
    assert counted["compute_snapshots"] == seeded["compute_snapshots"] + 1
    assert {t: n for t, n in counted.items() if t != "compute_snapshots"} == {
        t: n for t, n in seeded.items() if t != "compute_snapshots"
    }
    assert sum(await seed_counts_of(pool, account_id, "compute")) == 0


async def seed_counts_of(pool: asyncpg.Pool, account_id: str, product: str) -> list[int]:
    return [await _count(pool, t.table, account_id) for t in PRODUCTS_BY_NAME[product].tables]


async def test_counts_stay_exact_across_crashes_at_every_batch(pool: asyncpg.Pool) -> None:
    """The worker dies after each committed batch (the activity task is cancelled); each retry
    starts from the last heartbeat. What is counted always equals what is gone."""
    account_id = await _account(pool)
    other = await _account(pool, 1)
    seeded = (await seed_every_table(pool, account_id, n=40))["object_storage"]
    await seed_every_table(pool, other, n=40)
    assert seeded == {"storage_objects": 400, "storage_buckets": 40}
    total = sum(seeded.values())
    details: list[int] = []
    attempts = 0
    while True:
        attempts += 1
        env = _env(details[-1:])
        beats = 0

        def die_after_two_batches(index: int, env: ActivityEnvironment = env) -> None:
            nonlocal beats
            details.append(index)
            beats += 1
            if beats == 2:
                env.cancel()

        env.on_heartbeat = die_after_two_batches
        try:
            receipt = await purge(pool, account_id, "object_storage", batch_size=25, env=env)
        except asyncio.CancelledError:
            counted = sum((await _progress(pool, account_id, "object_storage")).values())
            left = sum(await seed_counts_of(pool, account_id, "object_storage"))
            assert counted + left == total, f"after crash {attempts}"
            assert attempts < 50
            continue
        break

    assert attempts > 5, "the purge was meant to crash several times"
    assert _rows(receipt) == seeded
    assert sum(await seed_counts_of(pool, account_id, "object_storage")) == 0
    assert sum(await seed_counts_of(pool, other, "object_storage")) == total
    batches = await pool.fetchval(
        "select sum(batches) from purge_progress where account_id = $1", account_id
    )
    assert batches == 16 + 2, "each batch that removed rows counted once: 400 / 25, 25 + 15"


async def test_a_batch_that_fails_before_commit_neither_deletes_nor_counts(
    pool: asyncpg.Pool,
) -> None:
    """A crash between the delete and the count's write: both roll back together."""
    account_id = await _account(pool)
    seeded = (await seed_every_table(pool, account_id, n=10))["dns"]
    async with pool.acquire() as conn:
        # Fails the third write of a count (not transactional: a sequence), once.
        await conn.execute(
            """
            create sequence crash_counter;
            create function crash_once() returns trigger language plpgsql as $$
            begin
                if nextval('crash_counter') = 3 then
                    raise exception 'simulated crash before commit';
                end if;
                return new;
            end;
            $$;
            create trigger crash_once after insert or update on purge_progress
                for each row execute function crash_once();
            """
        )
    heartbeats: list[int] = []
    with pytest.raises(asyncpg.RaiseError, match="simulated crash"):
        await purge(pool, account_id, "dns", batch_size=4, env=_env(heartbeats=heartbeats))
    assert heartbeats == [0, 0]
    assert await _progress(pool, account_id, "dns") == {"dns_records": 8}
    assert await _count(pool, "dns_records", account_id) == 2, "the failed batch was kept"

    receipt = await purge(pool, account_id, "dns", batch_size=4, env=_env(heartbeats[-1:]))

    assert _rows(receipt) == seeded == {"dns_records": 10, "dns_zones": 10}
    assert sum(await seed_counts_of(pool, account_id, "dns")) == 0


# --- legal holds ---------------------------------------------------------------------------------


async def test_a_legal_hold_refuses_the_purge_and_deletes_nothing_until_lifted(
    pool: asyncpg.Pool,
) -> None:
    account_id = await _account(pool)
    seeded = await seed_every_table(pool, account_id)
    before = await _digest(pool, account_id)
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values"
        " ($1, 'compute', 'Litigation hold: case 2026-CV-0042'),"
        " ($1, 'dns', 'an old hold'),"  # lifted below, before anything runs
        " ($1, 'cdn', 'a hold on another product')",
        account_id,
    )
    await pool.execute(
        "update legal_holds set lifted_at = now() where account_id = $1 and product = 'dns'",
        account_id,
    )

    with pytest.raises(ApplicationError) as refused:
        await purge(pool, account_id, "compute")

    assert refused.value.type == "PurgeRefused"
    assert refused.value.non_retryable
    assert "Litigation hold: case 2026-CV-0042" in refused.value.message
    assert await _digest(pool, account_id) == before
    assert await _progress(pool, account_id, "compute") == {}
    assert await pool.fetchval("select count(*) from product_purges") == 0
    # A lifted hold, or a hold on another product, refuses nothing.
    assert _rows(await purge(pool, account_id, "dns")) == seeded["dns"]

    await pool.execute(
        "update legal_holds set lifted_at = now() where account_id = $1 and product = 'compute'",
        account_id,
    )
    receipt = await purge(pool, account_id, "compute")

    assert _rows(receipt) == seeded["compute"] and receipt.verified_clean
    with pytest.raises(ApplicationError, match="a hold on another product"):
        await purge(pool, account_id, "cdn")


# --- releasing the identifiers -------------------------------------------------------------------


async def _release(pool: asyncpg.Pool, account_id: str) -> datetime:
    ref = AccountRef(account_id=account_id, workflow_id=workflow_id_for(account_id))
    return await _env().run(
        AccountActivities(pool, PurgeActivities(pool, Catalog()), Catalog()).release_identifiers,
        ref,
    )


async def _claims(pool: asyncpg.Pool, account_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "select kind, normalized_value, released_at from identifier_claims"
        " where account_id = $1 order by kind",
        account_id,
    )


async def test_identifiers_are_released_only_once_every_product_is_purged(
    pool: asyncpg.Pool,
) -> None:
    request = _request(7)
    account_id = (await register_account(pool, request)).account_id
    await seed_every_table(pool, account_id, n=1)

    with pytest.raises(ApplicationError) as refused:
        await _release(pool, account_id)
    assert refused.value.type == "PurgesUnfinished" and refused.value.non_retryable
    assert all(p.name in refused.value.message for p in PRODUCTS)

    for product in PRODUCTS[:-1]:
        await purge(pool, account_id, product.name)
    with pytest.raises(ApplicationError) as refused:
        await _release(pool, account_id)
    assert refused.value.type == "PurgesUnfinished"
    assert refused.value.message == f"purges unfinished: {PRODUCTS[-1].name}"
    held = await _claims(pool, account_id)
    assert [c["kind"] for c in held] == ["email", "phone", "user_name"]
    assert all(c["normalized_value"] and c["released_at"] is None for c in held)
    with pytest.raises(IdentifierTaken):
        await register_account(pool, request)

    await purge(pool, account_id, PRODUCTS[-1].name)
    released_at = await _release(pool, account_id)

    claims = await _claims(pool, account_id)
    assert len(claims) == 3
    assert all(c["normalized_value"] is None and c["released_at"] == released_at for c in claims)
    assert await _release(pool, account_id) == released_at, "released again"
    assert await _claims(pool, account_id) == claims
    assert (
        await pool.fetchval(
            "select count(*) from audit_events"
            " where account_id = $1 and kind = 'identifiers_released'",
            account_id,
        )
        == 1
    )
    # Free for someone else: the same user name, email and phone register again.
    again = await register_account(pool, request)
    assert again.account_id != account_id
    assert await _release(pool, account_id) == released_at
