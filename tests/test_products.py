"""The product registry against the real, migrated schema.

The under-deletion check (Meta's DELF idea): every table that can hold an account's data is
either purged by exactly one product or retained on purpose, with the reason written down.
A migration that adds such a table without a declaration fails this module.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter

import asyncpg
import pytest
from temporalio.testing import ActivityEnvironment

from accounts.registration import RegistrationRequest, register_account
from activities.prerequisites import PrerequisiteActivities
from contract.models import AccountRef, PendingTask, TaskCategory
from contract.names import workflow_id_for
from registry.catalog import Catalog
from registry.products import (
    PRODUCTS,
    PRODUCTS_BY_NAME,
    RETAINED_TABLES,
    LiveResource,
    PurgeMethod,
    TablePurge,
)
from tests.support import table_snapshot

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# --- what the schema says ------------------------------------------------------------------------

_ACCOUNT_TABLES = """
    with recursive tables as (
        select c.oid, c.relname from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = current_schema() and c.relkind in ('r', 'p') and not c.relispartition
    ),
    direct as (
        -- An account_id column, or a foreign key to accounts under any column name.
        select t.oid from tables t
        where exists (
            select 1 from pg_attribute a
            where a.attrelid = t.oid and a.attname = 'account_id' and not a.attisdropped
        )
        or exists (
            select 1 from pg_constraint k
            where k.conrelid = t.oid and k.contype = 'f' and k.confrelid = 'accounts'::regclass
        )
    ),
    reaching (oid) as (
        -- And whatever references those rows, however indirectly: it goes with the account.
        select oid from direct
        union
        select k.conrelid from pg_constraint k join reaching r on k.confrelid = r.oid
        where k.contype = 'f'
    )
    select t.relname from tables t where t.oid in (select oid from reaching)
"""


async def account_tables(conn: Connection) -> set[str]:
    """Tables that can hold an account's data: an account_id column, a foreign key to accounts,
    or a foreign key (transitively) to such a table."""
    return {row["relname"] for row in await conn.fetch(_ACCOUNT_TABLES)}


def declared_tables() -> list[str]:
    """Every table a product purges, once per declaration (duplicates are kept, to be found)."""
    return [table.table for product in PRODUCTS for table in product.tables]


async def uncovered_tables(conn: Connection) -> set[str]:
    """The under-deletion check: tables holding account data that no product purges and that
    are not retained on purpose."""
    return await account_tables(conn) - set(declared_tables()) - set(RETAINED_TABLES)


async def columns(conn: Connection, table: str) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        """
        select column_name, data_type, is_nullable from information_schema.columns
        where table_schema = current_schema() and table_name = $1
        """,
        table,
    )
    return {row["column_name"]: row for row in rows}


async def foreign_keys(conn: Connection) -> set[tuple[str, str]]:
    """(referencing table, referenced table) for every foreign key of the schema."""
    rows = await conn.fetch(
        """
        select k.conrelid::regclass::text as child, k.confrelid::regclass::text as parent
        from pg_constraint k where k.contype = 'f'
        """
    )
    return {(row["child"], row["parent"]) for row in rows}


# --- the under-deletion check --------------------------------------------------------------------


async def test_every_table_holding_account_data_is_purged_or_retained_on_purpose(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        found = await account_tables(conn)
        assert await uncovered_tables(conn) == set()
    # Sanity of the discovery itself: it sees the tables we know hold account data.
    assert {"accounts", "sessions", "storage_objects", "bills", "audit_events"} <= found
    assert "account_groups" not in found, "a group is not an account's data"

    declared = declared_tables()
    twice = {table for table, count in Counter(declared).items() if count > 1}
    assert twice == set(), "a table is purged by more than one declaration"
    assert set(declared) & set(RETAINED_TABLES) == set(), "a table both purged and retained"
    for table, reason in RETAINED_TABLES.items():
        assert reason.strip(), f"{table} is retained without a reason"
    # Nothing is declared that the schema does not hold as account data.
    assert set(declared) | set(RETAINED_TABLES) <= found


async def test_every_declared_table_exists_with_an_account_id_column(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for product in PRODUCTS:
            for table in product.tables:
                cols = await columns(conn, table.table)
                assert cols, f"{product.name}: no table {table.table}"
                assert "account_id" in cols, f"{table.table} has no account_id"
                assert table.key in cols, f"{table.table} has no column {table.key}"
            for live in product.live:
                cols = await columns(conn, live.table)
                assert {"account_id", "state"} <= set(cols), live.table
        for retained in RETAINED_TABLES:
            assert await columns(conn, retained), f"retained table {retained} does not exist"
    assert len(PRODUCTS_BY_NAME) == len(PRODUCTS), "two products share a name"


async def test_a_table_added_by_a_migration_that_nobody_declares_is_reported(
    pool: asyncpg.Pool,
) -> None:
    """What a product team sees when its migration adds a table and forgets the registry."""
    async with pool.acquire() as conn:
        await conn.execute(
            """
            create table gpu_reservations (
                reservation_id text primary key,
                account_id     text not null references accounts (account_id)
            );
            -- No account_id column, but a foreign key to accounts under another name.
            create table marketplace_listings (
                listing_id text primary key,
                seller     text not null references accounts (account_id)
            );
            -- Neither: only a foreign key to another table that holds account data.
            create table gpu_reservation_notes (
                note_id        bigint primary key,
                reservation_id text not null references gpu_reservations (reservation_id)
            );
            create table unrelated_lookup (code text primary key)
            """
        )
        assert await uncovered_tables(conn) == {
            "gpu_reservations",
            "marketplace_listings",
            "gpu_reservation_notes",
        }


# --- the composed statements ---------------------------------------------------------------------


async def test_every_composed_statement_is_valid_sql_for_the_schema(pool: asyncpg.Pool) -> None:
    """Prepared (the server parses, plans and types them), then run on an account with no data."""
    account = await register_account(
        pool, RegistrationRequest(user_name="emptyone", email="e@example.com", phone="+14155550100")
    )
    statements = 0
    async with pool.acquire() as conn, conn.transaction():
        for product in PRODUCTS:
            for table in product.tables:
                bound = await conn.prepare(table.bound_sql(after_last=False))
                assert [t.name for t in bound.get_parameters()] == ["text", "int8"], table.table
                assert await bound.fetchval(account.account_id, 100) is None
                key_type = bound.get_attributes()[0].type.name
                following = await conn.prepare(table.bound_sql(after_last=True))
                parameters = [t.name for t in following.get_parameters()]
                assert parameters == ["text", "int8", key_type], table.table
                first = await conn.prepare(table.range_sql(after_last=False))
                parameters = [t.name for t in first.get_parameters()]
                assert parameters == ["text", key_type, "text", "text", "text"], table.table
                assert [a.name for a in first.get_attributes()] == ["n"]
                progress = (product.name, table.table, table.method.value)
                nothing = await first.fetchval(account.account_id, None, *progress)
                assert nothing == 0
                next_range = await conn.prepare(table.range_sql(after_last=True))
                assert [t.name for t in next_range.get_parameters()][5] == key_type, table.table
                statements += 1
                probe = await conn.prepare(table.probe_sql)
                assert [t.name for t in probe.get_parameters()] == ["text"], table.table
                assert await probe.fetchval(account.account_id) == 0
                statements += 2
            probe_all = await conn.prepare(product.probe_sql)
            assert [t.name for t in probe_all.get_parameters()] == ["text"], product.name
            assert [a.name for a in probe_all.get_attributes()] == [t.table for t in product.tables]
            found = await probe_all.fetchrow(account.account_id)
            assert found is not None and set(found.values()) == {0}
            statements += 1
            for live in product.live:
                find = await conn.prepare(live.find_sql)
                assert [t.name for t in find.get_parameters()] == ["text", "text[]"], live.table
                assert [a.name for a in find.get_attributes()] == ["label", "state"]
                assert await find.fetch(account.account_id, list(live.live_states)) == []
                statements += 1
        uncounted = await conn.fetchval(
            "select count(*) from purge_progress where account_id = $1", account.account_id
        )
        assert uncounted == 0, "a batch that purged nothing wrote a progress row"
    assert statements == 3 * len(declared_tables()) + sum(1 + len(p.live) for p in PRODUCTS)


def test_declarations_refuse_what_is_not_a_plain_identifier_or_an_incoherent_method() -> None:
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        TablePurge("bills; drop table accounts", "bill_id")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        TablePurge("bills", "bill_id", PurgeMethod.ANONYMISE, cleared=("billed_to = 'x'",))
    with pytest.raises(ValueError, match="anonymise needs the columns it clears"):
        TablePurge("bills", "bill_id", PurgeMethod.ANONYMISE)
    with pytest.raises(ValueError, match="anonymise needs the columns it clears"):
        TablePurge("sessions", "session_id", cleared=("user_agent",))
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        _ = LiveResource("Compute-Instances", "x", "name", ("running",), "r").find_sql


async def test_each_key_is_unique_among_one_accounts_rows(pool: asyncpg.Pool) -> None:
    """Batches are taken in key order with `key in (...)`: a key shared by two of the account's
    rows would purge more than a batch and make `limit` meaningless."""
    async with pool.acquire() as conn:
        for product in PRODUCTS:
            for table in product.tables:
                unique_sets = await conn.fetch(
                    """
                    select array(
                        select a.attname::text from unnest(i.indkey) k
                        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k
                    ) as cols
                    from pg_index i
                    where i.indrelid = $1::regclass and i.indisunique and i.indpred is null
                    """,
                    table.table,
                )
                assert any(set(row["cols"]) <= {table.key, "account_id"} for row in unique_sets), (
                    f"{table.table}.{table.key} is not unique within an account"
                )


async def test_each_table_has_the_account_key_index_its_batches_range_over(
    pool: asyncpg.Pool,
) -> None:
    """A batch is a range of the `(account_id, key)` index: without it, on a table shared by
    many accounts, each batch walks the primary key past every other account's rows."""
    async with pool.acquire() as conn:
        for product in PRODUCTS:
            for table in product.tables:
                leading = await conn.fetch(
                    """
                    select array(
                        select a.attname::text from unnest(i.indkey) with ordinality k(num, n)
                        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.num
                        order by k.n
                    ) as cols
                    from pg_index i
                    where i.indrelid = $1::regclass and i.indpred is null
                    """,
                    table.table,
                )
                wanted = ["account_id"] if table.key == "account_id" else ["account_id", table.key]
                assert any(row["cols"][: len(wanted)] == wanted for row in leading), (
                    f"{table.table} has no index on (account_id, {table.key})"
                )


# --- anonymised tables and the purge order -------------------------------------------------------


async def test_anonymised_tables_keep_the_record_and_can_clear_what_identifies_the_person(
    pool: asyncpg.Pool,
) -> None:
    anonymised = [
        table
        for product in PRODUCTS
        for table in product.tables
        if table.method is PurgeMethod.ANONYMISE
    ]
    assert {table.table for table in anonymised} == {"bills"}, "bills are kept by law"
    async with pool.acquire() as conn:
        for table in anonymised:
            cols = await columns(conn, table.table)
            assert cols["anonymised_at"]["data_type"] == "timestamp with time zone"
            for column in table.cleared:
                assert column in cols, f"{table.table}.{column} does not exist"
                assert cols[column]["is_nullable"] == "YES", f"{table.table}.{column} not null"
                assert column not in (table.key, "account_id")
            # What the record is kept for stays: it is an update, never a delete.
            for sql in (table.range_sql(after_last=False), table.range_sql(after_last=True)):
                assert f"(update {table.table} set " in sql
                assert "delete" not in sql
    bills = next(t for t in anonymised if t.table == "bills")
    assert bills.cleared == ("billed_to",)


async def test_each_product_purges_children_before_the_rows_they_reference(
    pool: asyncpg.Pool,
) -> None:
    """Statically, from the schema's foreign keys (test_purge purges real data in every table)."""
    position = {
        table.table: (product.name, index)
        for product in PRODUCTS
        for index, table in enumerate(product.tables)
    }
    async with pool.acquire() as conn:
        keys = await foreign_keys(conn)
    checked = 0
    for child, parent in keys:
        if child == parent:
            continue
        if child in position and parent in position:
            (child_product, child_index), (parent_product, parent_index) = (
                position[child],
                position[parent],
            )
            # Products are purged in parallel: a reference across products could break either.
            assert child_product == parent_product, f"{child} -> {parent} crosses products"
            assert child_index < parent_index, f"{parent} is purged before {child}"
            # Tables declared `together` are purged at the same time: never a child and its
            # parent (the parent's delete would fail on a child row not yet purged).
            product = PRODUCTS_BY_NAME[child_product]
            assert product.stage_start(child_index) != product.stage_start(parent_index), (
                f"{child} -> {parent} are declared together"
            )
            checked += 1
        # A kept table must not point at purged rows: the delete would fail or leave it dangling.
        assert not (child in RETAINED_TABLES and parent in position), f"{child} -> {parent}"
    assert checked >= 7  # snapshots, disks, objects, backups, records, logs, attempts


async def test_live_states_are_states_the_schema_allows_and_leave_some_residual(
    pool: asyncpg.Pool,
) -> None:
    """A misspelt live state would find nothing and let an account with running resources go."""
    async with pool.acquire() as conn:
        for product in PRODUCTS:
            own = {table.table for table in product.tables}
            for live in product.live:
                assert live.table in own, (
                    f"{product.name} finds live rows in a table it never purges"
                )
                checks = await conn.fetch(
                    """
                    select pg_get_constraintdef(oid) as def from pg_constraint
                    where conrelid = $1::regclass and contype = 'c'
                    """,
                    live.table,
                )
                allowed = {
                    state
                    for row in checks
                    if "state" in row["def"]
                    for state in re.findall(r"'([^']+)'::text", row["def"])
                }
                assert set(live.live_states) <= allowed, live.table
                assert allowed - set(live.live_states), f"{live.table} has no residual state"


# --- the prerequisite check ----------------------------------------------------------------------


async def _register(pool: asyncpg.Pool) -> str:
    name = f"user{uuid.uuid4().hex[:10]}"
    phone = "+1415" + str(2_000_000 + uuid.uuid4().int % 8_000_000)
    account = await register_account(
        pool, RegistrationRequest(user_name=name, email=f"{name}@example.com", phone=phone)
    )
    return account.account_id


# One row per live declaration: (table, insert with $1 = id, $2 = account_id).
_LIVE_ROWS = {
    "compute_instances": "insert into compute_instances values ($1, $2, 'eu-west-1', 'web-1',"
    " 'e2-small', 'running')",
    "compute_disks": "insert into compute_disks (disk_id, account_id, size_gb, state)"
    " values ($1, $2, 50, 'available')",
    "storage_buckets": "insert into storage_buckets values ($1, $2, 'photos', 'eu-west-1',"
    " 'active')",
    "db_instances": "insert into db_instances values ($1, $2, 'postgres', 'orders', 'available')",
    "elastic_ips": "insert into elastic_ips values ($1, $2, '203.0.113.7', 'allocated')",
    "load_balancers": "insert into load_balancers values ($1, $2, 'front', 'active')",
    "dns_zones": "insert into dns_zones values ($1, $2, 'example.org', 'active')",
    "cdn_domains": "insert into cdn_domains values ($1, $2, 'cdn.example.org',"
    " 'origin.example.org', 'offline')",
}

# The same tables with rows in a state that no longer blocks deletion.
_RESIDUAL_ROWS = {
    "compute_instances": "insert into compute_instances values ($1, $2, 'eu-west-1', 'old',"
    " 'e2-small', 'terminated')",
    "compute_disks": "insert into compute_disks (disk_id, account_id, size_gb, state)"
    " values ($1, $2, 50, 'deleted')",
    "storage_buckets": "insert into storage_buckets values ($1, $2, 'old', 'eu-west-1', 'deleted')",
    "db_instances": "insert into db_instances values ($1, $2, 'mysql', 'old', 'deleted')",
    "elastic_ips": "insert into elastic_ips values ($1, $2, '203.0.113.8', 'released')",
    "load_balancers": "insert into load_balancers values ($1, $2, 'old', 'deleted')",
    "dns_zones": "insert into dns_zones values ($1, $2, 'old.example.org', 'deleted')",
    "cdn_domains": "insert into cdn_domains values ($1, $2, 'old.example.org', 'o.example.org',"
    " 'deleted')",
}


async def _attach_one_of_everything(pool: asyncpg.Pool, a: str) -> None:
    live_tables = {live.table for product in PRODUCTS for live in product.live}
    assert live_tables == set(_LIVE_ROWS), "a live declaration this test does not seed"
    async with pool.acquire() as conn, conn.transaction():
        for table, sql in _LIVE_ROWS.items():
            await conn.execute(sql, f"live-{table}-{a}", a)
        await conn.execute("insert into account_balances values ($1, 2500, 'EUR')", a)
        await conn.execute("insert into account_groups values ($1, 'Platform team')", f"g-{a}")
        await conn.execute(
            "insert into group_memberships (group_id, account_id, role) values ($1, $2, 'member')",
            f"g-{a}",
            a,
        )
        await conn.execute(
            "insert into partner_relationships (relationship_id, account_id, kind, counterparty,"
            " status) values ($1, $2, 'agent', 'Acme Agency', 'active'),"
            " ($3, $2, 'partner', 'Initech Consulting', 'active')",
            f"agent-{a}",
            a,
            f"partner-{a}",
        )
        await conn.execute(
            "insert into contracts values ($1, $2, 'Enterprise support', 'active', '2027-06-30')",
            f"c-{a}",
            a,
        )
        await conn.execute(
            "insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)"
            " values ($1, $2, '2026-11', 9900, 'unpaid', 'Jane Doe')",
            f"unpaid-{a}",
            a,
        )


async def _attach_residual_only(pool: asyncpg.Pool, a: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for table, sql in _RESIDUAL_ROWS.items():
            await conn.execute(sql, f"old-{table}-{a}", a)
        await conn.execute(
            "insert into account_balances (account_id, funds_cents) values ($1, 0)", a
        )
        await conn.execute(
            "insert into partner_relationships (relationship_id, account_id, kind, counterparty,"
            " status, ended_at) values ($1, $2, 'agent', 'Acme Agency', 'ended', now()),"
            " ($3, $2, 'reseller', 'Old Reseller', 'ended', now()),"
            " ($4, $2, 'partner', 'Initech Consulting', 'ended', now())",
            f"agent-{a}",
            a,
            f"reseller-{a}",
            f"partner-{a}",
        )
        await conn.execute(
            "insert into contracts values ($1, $2, 'Support 2024', 'fulfilled', '2024-12-31'),"
            " ($3, $2, 'Pilot', 'terminated', null)",
            f"c1-{a}",
            a,
            f"c2-{a}",
        )
        await conn.execute(
            "insert into bills (bill_id, account_id, period, amount_cents, status, billed_to)"
            " values ($1, $2, '2026-10', 1234, 'paid', 'Jane Doe')",
            f"paid-{a}",
            a,
        )


async def _check(pool: asyncpg.Pool, account_id: str) -> list[PendingTask]:
    ref = AccountRef(account_id=account_id, workflow_id=workflow_id_for(account_id))
    report = await ActivityEnvironment().run(
        PrerequisiteActivities(pool, Catalog()).check_prerequisites, ref
    )
    return report.pending_tasks


async def test_prerequisite_check_reports_one_task_per_blocking_item_of_every_category(
    pool: asyncpg.Pool,
) -> None:
    account_id = await _register(pool)
    await _attach_one_of_everything(pool, account_id)
    other = await _register(pool)
    await _attach_one_of_everything(pool, other)

    tasks = await _check(pool, account_id)

    assert {task.category for task in tasks} == TaskCategory.of_prerequisites()
    for task in tasks:
        assert task.item.strip() and task.message.strip() and task.resolution.strip(), task
        assert other not in task.item + task.message, "another account's item"
    cloud = [task for task in tasks if task.category is TaskCategory.CLOUD_PRODUCT]
    assert len(cloud) == len(_LIVE_ROWS), "one task per live resource"
    assert {task.product for task in cloud} == {p.name for p in PRODUCTS if p.live}
    for task in cloud:
        assert task.product is not None
        assert task.item.startswith(f"{PRODUCTS_BY_NAME[task.product].title}: ")
    by_category = Counter(task.category for task in tasks)
    assert by_category[TaskCategory.AGENCY] == 1 and by_category[TaskCategory.PARTNERSHIP] == 1
    assert by_category[TaskCategory.ARREARS] == 1 and by_category[TaskCategory.CONTRACT] == 1
    balance = next(t for t in tasks if t.category is TaskCategory.BALANCE_FUNDS)
    assert "25.00 EUR" in balance.item
    arrears = next(t for t in tasks if t.category is TaskCategory.ARREARS)
    assert f"unpaid-{account_id}" in arrears.item and "99.00 USD" in arrears.item
    instance = next(t for t in cloud if f"live-compute_instances-{account_id}" in t.item)
    assert instance.product == "compute" and "running" in instance.message


async def test_an_account_with_only_residual_data_has_no_pending_tasks(pool: asyncpg.Pool) -> None:
    account_id = await _register(pool)
    await _attach_residual_only(pool, account_id)
    # Another account's live resources are not this account's business.
    other = await _register(pool)
    await _attach_one_of_everything(pool, other)

    assert await _check(pool, account_id) == []
    assert len(await _check(pool, other)) == len(_LIVE_ROWS) + 6


async def test_the_prerequisite_check_writes_nothing(pool: asyncpg.Pool) -> None:
    busy = await _register(pool)
    await _attach_one_of_everything(pool, busy)
    quiet = await _register(pool)
    await _attach_residual_only(pool, quiet)
    before = await table_snapshot(pool)
    assert before["compute_instances"].startswith("2 rows, ")

    assert await _check(pool, busy)
    assert await _check(pool, quiet) == []

    assert await table_snapshot(pool) == before
