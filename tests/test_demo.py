"""The demo accounts against the real, migrated schema: what each scenario holds, and idempotence.

The per-category checks below are written against the tables on purpose, independently of the
prerequisite check; one test then makes sure the real check agrees with them.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import demo as demo_module
from accounts.registration import RegistrationRequest, register_account
from activities.prerequisites import PrerequisiteActivities
from activities.purge import PurgeActivities
from contract.errors import PURGE_REFUSED
from contract.models import AccountRef, PurgeProductInput, TaskCategory
from contract.names import workflow_id_for
from demo import (
    SCENARIOS,
    SEEDED_EVENT,
    DemoAccountConflict,
    DemoSizes,
    demo_request,
    seed_demo,
)
from demo.residual import DEFAULT_SIZES
from demo.scenarios import LEGAL_HOLD_REASON
from registry.catalog import Catalog
from registry.products import PRODUCTS
from tests.support import table_snapshot

SMALL = DemoSizes(
    storage_objects=400, dns_records=120, cdn_access_logs=90, compute_snapshots=25, db_backups=10
)

CLOUD_PRODUCTS = ("compute", "object_storage", "databases", "networking", "dns", "cdn")

FINDINGS: dict[str, str] = {
    "compute": """
        select (select count(*) from compute_instances
                where account_id = $1 and state in ('running', 'stopped'))
             + (select count(*) from compute_disks
                where account_id = $1 and state in ('attached', 'available'))
    """,
    "object_storage": (
        "select count(*) from storage_buckets where account_id = $1 and state = 'active'"
    ),
    "databases": """
        select count(*) from db_instances
        where account_id = $1 and state in ('available', 'stopped')
    """,
    "networking": """
        select (select count(*) from elastic_ips where account_id = $1 and state = 'allocated')
             + (select count(*) from load_balancers where account_id = $1 and state = 'active')
    """,
    "dns": "select count(*) from dns_zones where account_id = $1 and state = 'active'",
    "cdn": """
        select count(*) from cdn_domains where account_id = $1 and state in ('online', 'offline')
    """,
    "balance_funds": (
        "select count(*) from account_balances where account_id = $1 and funds_cents > 0"
    ),
    "account_group": "select count(*) from group_memberships where account_id = $1",
    "agency": """
        select count(*) from partner_relationships
        where account_id = $1 and kind in ('agent', 'reseller') and status = 'active'
    """,
    "partnership": """
        select count(*) from partner_relationships
        where account_id = $1 and kind = 'partner' and status = 'active'
    """,
    "contract": "select count(*) from contracts where account_id = $1 and status = 'active'",
    "arrears": "select count(*) from bills where account_id = $1 and status = 'unpaid'",
}
"""Per prerequisite category (cloud products itemised): how many blocking items an account has."""

RESIDUAL_TABLES = (
    "compute_instances",
    "compute_disks",
    "compute_snapshots",
    "storage_buckets",
    "storage_objects",
    "db_instances",
    "db_backups",
    "elastic_ips",
    "load_balancers",
    "dns_zones",
    "dns_records",
    "cdn_domains",
    "cdn_access_logs",
    "bills",
    "contracts",
    "partner_relationships",
    "account_balances",
    "sessions",
    "api_keys",
)
"""Tables where even an unblocked demo account holds rows: what its deletion will purge."""

LARGE_TABLES = {
    "storage_objects": "storage_objects",
    "dns_records": "dns_records",
    "cdn_access_logs": "cdn_access_logs",
    "compute_snapshots": "compute_snapshots",
    "db_backups": "db_backups",
}
"""DemoSizes field -> the table it sizes."""


@pytest.fixture
async def demo(pool: asyncpg.Pool) -> dict[str, str]:
    return await seed_demo(pool, sizes=SMALL)


async def findings(pool: asyncpg.Pool, account_id: str) -> dict[str, int]:
    return {category: await pool.fetchval(sql, account_id) for category, sql in FINDINGS.items()}


async def rows_of(pool: asyncpg.Pool, account_id: str, tables: tuple[str, ...]) -> dict[str, int]:
    return {
        table: await pool.fetchval(
            f"select count(*) from {table} where account_id = $1", account_id
        )
        for table in tables
    }


async def account_tables(pool: asyncpg.Pool) -> tuple[str, ...]:
    """Every table with an account_id column."""
    rows = await pool.fetch(
        """
        select table_name from information_schema.columns
        where table_schema = current_schema() and column_name = 'account_id'
        order by table_name
        """
    )
    return tuple(row["table_name"] for row in rows)


async def release(pool: asyncpg.Pool, account_id: str) -> None:
    """What the end of a deletion does to the account row and its claims."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            update identifier_claims set released_at = now(), normalized_value = null
            where account_id = $1 and released_at is null
            """,
            account_id,
        )
        await conn.execute(
            """
            update accounts set status = 'deleted', deleted_at = now(), frozen_at = null,
                user_name = null, email = null, phone = null, display_name = null
            where account_id = $1
            """,
            account_id,
        )


# --- the four scenarios --------------------------------------------------------------------------


async def test_seed_creates_the_four_scenarios_with_their_identifiers(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    assert tuple(demo) == SCENARIOS == ("clean", "blocked", "legal_hold", "large")
    assert len(set(demo.values())) == 4
    for scenario, account_id in demo.items():
        account = await pool.fetchrow(
            "select status, user_name, email, phone, display_name from accounts"
            " where account_id = $1",
            account_id,
        )
        assert account is not None, scenario
        assert dict(account) == {
            "status": "active",
            "user_name": f"demo-{scenario}",
            "email": f"demo+{scenario}@example.com",
            "phone": demo_request(scenario).phone,
            "display_name": demo_request(scenario).display_name,
        }
        claims = await pool.fetch(
            "select kind, normalized_value from identifier_claims"
            " where account_id = $1 and released_at is null order by kind",
            account_id,
        )
        assert [c["normalized_value"] for c in claims] == [
            f"demo+{scenario}@example.com",
            demo_request(scenario).phone,
            f"demo-{scenario}",
        ]
    phones = [demo_request(scenario).phone for scenario in SCENARIOS]
    assert len(set(phones)) == 4 and all(p.startswith("+1415555010") for p in phones)


async def test_blocked_has_a_finding_in_every_category(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    found = await findings(pool, demo["blocked"])
    assert set(found) == {*CLOUD_PRODUCTS, *(c.value for c in TaskCategory.of_prerequisites())} - {
        "cloud_product",
    }
    assert [category for category, count in found.items() if count == 0] == []
    roles = await pool.fetch(
        "select role from group_memberships where account_id = $1", demo["blocked"]
    )
    assert [r["role"] for r in roles] == ["owner"]


@pytest.mark.parametrize("scenario", ["clean", "legal_hold", "large"])
async def test_unblocked_scenarios_have_no_finding_but_residual_data_everywhere(
    pool: asyncpg.Pool, demo: dict[str, str], scenario: str
) -> None:
    account_id = demo[scenario]
    assert await findings(pool, account_id) == dict.fromkeys(FINDINGS, 0)
    residual = await rows_of(pool, account_id, RESIDUAL_TABLES)
    assert [table for table, count in residual.items() if count == 0] == []
    assert await pool.fetchval(
        "select count(*) from partner_relationships where account_id = $1 and status = 'ended'",
        account_id,
    )
    assert await pool.fetchval(
        "select count(*) from sessions where account_id = $1 and expires_at > now()", account_id
    )
    assert await pool.fetchval(
        "select count(*) from api_keys where account_id = $1 and revoked_at is null", account_id
    )


async def test_the_prerequisite_check_agrees_with_the_scenarios(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    activities = PrerequisiteActivities(pool, Catalog())
    reports = {
        scenario: await ActivityEnvironment().run(
            activities.check_prerequisites,
            AccountRef(account_id=account_id, workflow_id=workflow_id_for(account_id)),
        )
        for scenario, account_id in demo.items()
    }
    blocked = reports["blocked"].pending_tasks
    assert {t.category for t in blocked} == TaskCategory.of_prerequisites()
    assert {t.product for t in blocked if t.category is TaskCategory.CLOUD_PRODUCT} == set(
        CLOUD_PRODUCTS
    )
    assert {s: r.pending_tasks for s, r in reports.items() if s != "blocked"} == {
        "clean": [],
        "legal_hold": [],
        "large": [],
    }


async def test_legal_hold_holds_object_storage_and_the_purge_refuses(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    holds = await pool.fetch(
        "select account_id, product, reason from legal_holds where lifted_at is null"
    )
    assert [tuple(h) for h in holds] == [(demo["legal_hold"], "object_storage", LEGAL_HOLD_REASON)]
    assert LEGAL_HOLD_REASON.startswith("Litigation hold")
    objects = await rows_of(pool, demo["legal_hold"], ("storage_objects", "storage_buckets"))
    clean = await rows_of(pool, demo["clean"], ("storage_objects", "storage_buckets"))
    assert objects["storage_objects"] > clean["storage_objects"]
    assert objects["storage_buckets"] > clean["storage_buckets"]

    account_id = demo["legal_hold"]
    request = PurgeProductInput(
        account_id=account_id, workflow_id=workflow_id_for(account_id), product="object_storage"
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(PurgeActivities(pool, Catalog()).purge_product, request)
    assert refused.value.type == PURGE_REFUSED
    assert LEGAL_HOLD_REASON in str(refused.value)
    assert await rows_of(pool, account_id, ("storage_objects",)) == {
        "storage_objects": objects["storage_objects"]
    }


async def test_large_holds_the_requested_residual_rows_beyond_clean(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    tables = tuple(LARGE_TABLES.values())
    large = await rows_of(pool, demo["large"], tables)
    clean = await rows_of(pool, demo["clean"], tables)
    assert {t: large[t] - clean[t] for t in tables} == {
        table: getattr(SMALL, field) for field, table in LARGE_TABLES.items()
    }
    spread = await pool.fetchrow(
        """
        select (select count(distinct bucket_id) from storage_objects where account_id = $1)
                   as buckets,
               (select count(distinct zone_id) from dns_records where account_id = $1) as zones,
               (select count(distinct cdn_domain_id) from cdn_access_logs where account_id = $1)
                   as cdn_domains,
               (select count(distinct disk_id) from compute_snapshots where account_id = $1)
                   as disks,
               (select count(distinct db_instance_id) from db_backups where account_id = $1)
                   as databases
        """,
        demo["large"],
    )
    assert spread is not None
    assert dict(spread) == {"buckets": 5, "zones": 4, "cdn_domains": 3, "disks": 7, "databases": 3}


async def test_large_is_purged_completely_by_every_product(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    account_id = demo["large"]
    before = await rows_of(pool, account_id, tuple(LARGE_TABLES.values()))
    activities = PurgeActivities(pool, Catalog(), batch_size=100)
    purged: dict[str, int] = {}
    for product in PRODUCTS:
        request = PurgeProductInput(
            account_id=account_id, workflow_id=workflow_id_for(account_id), product=product.name
        )
        receipt = await ActivityEnvironment().run(activities.purge_product, request)
        assert receipt.verified_clean, product.name
        purged |= {table.table: table.rows for table in receipt.tables}
    assert {table: purged[table] for table in before} == before
    assert await findings(pool, account_id) == dict.fromkeys(FINDINGS, 0)


@pytest.mark.slow
async def test_large_with_the_default_sizes_seeds_in_seconds(pool: asyncpg.Pool) -> None:
    started = time.monotonic()
    seeded = await seed_demo(pool)
    elapsed = time.monotonic() - started
    tables = tuple(LARGE_TABLES.values())
    large = await rows_of(pool, seeded["large"], tables)
    clean = await rows_of(pool, seeded["clean"], tables)
    assert {t: large[t] - clean[t] for t in tables} == {
        table: getattr(DEFAULT_SIZES, field) for field, table in LARGE_TABLES.items()
    }
    assert DEFAULT_SIZES.total >= 300_000
    assert elapsed < 30, f"seeding the demo took {elapsed:.1f} s"


# --- idempotence and repair ----------------------------------------------------------------------


async def test_seeding_again_changes_nothing(pool: asyncpg.Pool, demo: dict[str, str]) -> None:
    before = await table_snapshot(pool)
    assert [t for t in RESIDUAL_TABLES if before[t].startswith("0 rows")] == []
    assert await seed_demo(pool, sizes=SMALL) == demo
    assert await seed_demo(pool, sizes=DemoSizes(storage_objects=9)) == demo
    assert await table_snapshot(pool) == before
    markers = await pool.fetch(
        "select account_id, detail->>'scenario' as scenario from audit_events where kind = $1"
        " order by event_id",
        SEEDED_EVENT,
    )
    assert [(m["scenario"], m["account_id"]) for m in markers] == list(demo.items())


async def test_concurrent_seeds_create_each_account_once(pool: asyncpg.Pool) -> None:
    first, second = await asyncio.gather(seed_demo(pool, sizes=SMALL), seed_demo(pool, sizes=SMALL))
    assert first == second
    assert await pool.fetchval("select count(*) from accounts") == 4
    assert await pool.fetchval("select count(*) from identifier_claims") == 12
    assert await pool.fetchval(
        "select count(*) from audit_events where kind = $1", SEEDED_EVENT
    ) == len(SCENARIOS)
    large = await rows_of(pool, first["large"], ("storage_objects",))
    clean = await rows_of(pool, first["clean"], ("storage_objects",))
    assert large["storage_objects"] - clean["storage_objects"] == SMALL.storage_objects


async def test_released_demo_claims_lead_to_a_new_account(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    old_clean = demo["clean"]
    # The old account's bills stay (anonymised, kept by law) and here its other rows too:
    # the new account's ids must not collide with any of them.
    await release(pool, old_clean)

    again = await seed_demo(pool, sizes=SMALL)

    assert again["clean"] != old_clean
    assert {s: a for s, a in again.items() if s != "clean"} == {
        s: a for s, a in demo.items() if s != "clean"
    }
    new_residual = await rows_of(pool, again["clean"], RESIDUAL_TABLES)
    assert new_residual == await rows_of(pool, old_clean, RESIDUAL_TABLES)
    assert await findings(pool, again["clean"]) == dict.fromkeys(FINDINGS, 0)
    assert await pool.fetchval(
        "select user_name from accounts where account_id = $1", again["clean"]
    ) == ("demo-clean")
    assert await seed_demo(pool, sizes=SMALL) == again


async def test_a_registered_but_unfilled_demo_account_is_filled_by_the_next_seed(
    pool: asyncpg.Pool,
) -> None:
    # A crash between registration and the scenario's data leaves exactly this.
    registered = await register_account(pool, demo_request("blocked"))

    seeded = await seed_demo(pool, sizes=SMALL)

    assert seeded["blocked"] == registered.account_id
    found = await findings(pool, registered.account_id)
    assert [category for category, count in found.items() if count == 0] == []


async def test_a_failed_fill_leaves_no_data_and_the_next_seed_repairs_it(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*args: object) -> None:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(demo_module, "_mark_seeded", crash)
    with pytest.raises(RuntimeError, match="connection lost"):
        await seed_demo(pool, sizes=SMALL)
    account_id = await pool.fetchval("select account_id from accounts")
    tables = tuple(
        t for t in await account_tables(pool) if t not in ("accounts", "identifier_claims")
    )
    assert await rows_of(pool, account_id, tables) == dict.fromkeys(tables, 0)

    monkeypatch.undo()
    seeded = await seed_demo(pool, sizes=SMALL)

    assert seeded["clean"] == account_id
    residual = await rows_of(pool, account_id, RESIDUAL_TABLES)
    assert [table for table, count in residual.items() if count == 0] == []


async def test_a_purged_demo_account_is_not_filled_again_while_it_holds_its_claims(
    pool: asyncpg.Pool, demo: dict[str, str]
) -> None:
    account_id = demo["legal_hold"]
    await pool.execute(
        "update accounts set status = 'frozen', frozen_at = now() where account_id = $1",
        account_id,
    )
    for table in ("sessions", "api_keys", "compute_snapshots"):
        await pool.execute(f"delete from {table} where account_id = $1", account_id)

    assert await seed_demo(pool, sizes=SMALL) == demo

    assert await rows_of(pool, account_id, ("sessions", "api_keys", "compute_snapshots")) == {
        "sessions": 0,
        "api_keys": 0,
        "compute_snapshots": 0,
    }


async def test_an_unfilled_demo_account_under_deletion_is_left_alone(pool: asyncpg.Pool) -> None:
    registered = await register_account(pool, demo_request("clean"))
    await pool.execute(
        "update accounts set status = 'frozen', frozen_at = now() where account_id = $1",
        registered.account_id,
    )

    seeded = await seed_demo(pool, sizes=SMALL)

    assert seeded["clean"] == registered.account_id
    tables = tuple(
        t for t in await account_tables(pool) if t not in ("accounts", "identifier_claims")
    )
    assert await rows_of(pool, registered.account_id, tables) == dict.fromkeys(tables, 0)


@pytest.mark.parametrize(
    "stranger",
    [
        RegistrationRequest(user_name="demo-clean", email="x@example.com", phone="+14155550999"),
        RegistrationRequest(
            user_name="someone", email="demo+clean@example.com", phone="+14155550999"
        ),
    ],
    ids=["user_name", "email"],
)
async def test_a_demo_identifier_held_by_another_account_is_a_clear_error(
    pool: asyncpg.Pool, stranger: RegistrationRequest
) -> None:
    other = await register_account(pool, stranger)
    before = await table_snapshot(pool)

    with pytest.raises(DemoAccountConflict, match="clean demo"):
        await seed_demo(pool, sizes=SMALL)

    assert await table_snapshot(pool) == before
    assert (
        await pool.fetchval("select count(*) from sessions where account_id = $1", other.account_id)
        == 0
    )


def test_sizes_and_scenarios_are_validated() -> None:
    with pytest.raises(ValueError, match="storage_objects"):
        DemoSizes(storage_objects=-1)
    with pytest.raises(ValueError, match="unknown demo scenario"):
        demo_request("broken")
    assert DemoSizes(storage_objects=1, dns_records=2, cdn_access_logs=3).total == (
        1 + 2 + 3 + DEFAULT_SIZES.compute_snapshots + DEFAULT_SIZES.db_backups
    )
