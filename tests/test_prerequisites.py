"""The prerequisite check: every category of SPEC found, each task worded and ordered exactly."""

from __future__ import annotations

import re
import uuid

import asyncpg
from temporalio.testing import ActivityEnvironment

from accounts.registration import RegistrationRequest, register_account
from activities.prerequisites import PrerequisiteActivities
from contract.models import AccountRef, PendingTask, TaskCategory
from contract.names import workflow_id_for
from registry.catalog import Catalog
from registry.prerequisites import PREREQUISITES
from registry.products import PRODUCTS


def test_every_category_of_spec_is_declared_once() -> None:
    declared = [category for prerequisite in PREREQUISITES for category in prerequisite.categories]
    assert len(declared) == len(set(declared)), "a category declared twice"
    # Cloud products come from the products' live resources; purge failures from the purge.
    assert any(product.live for product in PRODUCTS)
    assert set(declared) == TaskCategory.of_prerequisites() - {
        TaskCategory.CLOUD_PRODUCT,
    }, "a category of SPEC (flow step 1) with no declaration in registry/prerequisites.py"


def test_every_query_takes_the_account_id_and_nothing_else() -> None:
    for prerequisite in PREREQUISITES:
        assert set(re.findall(r"\$\d+", prerequisite.sql)) == {"$1"}, prerequisite.sql


async def _register(pool: asyncpg.Pool) -> str:
    name = f"user{uuid.uuid4().hex[:10]}"
    phone = "+1415" + str(2_000_000 + uuid.uuid4().int % 8_000_000)
    account = await register_account(
        pool, RegistrationRequest(user_name=name, email=f"{name}@example.com", phone=phone)
    )
    return account.account_id


async def _attach_every_variant(pool: asyncpg.Pool, a: str) -> None:
    """Every wording the check has (owner and member, agent, reseller and partner, a contract
    with and without an end date, two bills), inserted out of order, next to rows that do not
    block."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "insert into compute_instances values ($1, $2, 'us-east-1', 'web-1', 'e2-medium',"
            " 'running')",
            f"i-{a}",
            a,
        )
        await conn.execute(
            "insert into account_balances (account_id, funds_cents, currency)"
            " values ($1, 123456789, 'EUR')",
            a,
        )
        await conn.execute(
            "insert into account_groups (group_id, name) values ($1, 'Platform'), ($2, 'Data')",
            f"g2-{a}",
            f"g1-{a}",
        )
        await conn.execute(
            "insert into group_memberships (group_id, account_id, role)"
            " values ($1, $3, 'member'), ($2, $3, 'owner')",
            f"g2-{a}",
            f"g1-{a}",
            a,
        )
        await conn.execute(
            "insert into partner_relationships (relationship_id, account_id, kind, counterparty,"
            " status) values ($1, $5, 'reseller', 'Acme Resellers', 'active'),"
            " ($2, $5, 'partner', 'Initech', 'active'), ($3, $5, 'agent', 'Globex', 'active'),"
            " ($4, $5, 'agent', 'Umbrella', 'ended')",
            f"rel3-{a}",
            f"rel2-{a}",
            f"rel1-{a}",
            f"rel0-{a}",
            a,
        )
        await conn.execute(
            "insert into contracts values ($1, $3, 'Pilot', 'active', null),"
            " ($2, $3, 'Support 2026', 'active', '2026-12-31'),"
            " ($4, $3, 'Old', 'fulfilled', '2024-01-31')",
            f"c2-{a}",
            f"c1-{a}",
            a,
            f"c0-{a}",
        )
        await conn.execute(
            "insert into bills (bill_id, account_id, period, amount_cents, currency, status)"
            " values ($1, $3, '2026-11', 9900, 'USD', 'unpaid'),"
            " ($2, $3, '2026-10', 5, 'USD', 'unpaid'), ($4, $3, '2026-09', 100, 'USD', 'paid')",
            f"b2-{a}",
            f"b1-{a}",
            a,
            f"b0-{a}",
        )


def _expected(a: str) -> list[PendingTask]:
    return [
        PendingTask(
            category=TaskCategory.CLOUD_PRODUCT,
            product="compute",
            item=f"Compute: compute instance i-{a} (web-1, us-east-1)",
            message=f"The compute instance i-{a} (web-1, us-east-1) is still running.",
            resolution="Terminate the instance in the Compute console.",
        ),
        PendingTask(
            category=TaskCategory.BALANCE_FUNDS,
            item="account balance 1,234,567.89 EUR",
            message="Your account still holds 1,234,567.89 EUR of funds.",
            resolution="Withdraw the balance to your payment method or spend it first.",
        ),
        PendingTask(
            category=TaskCategory.ACCOUNT_GROUP,
            item=f"account group g1-{a} (Data)",
            message="You are the owner of the group Data.",
            resolution="Transfer ownership to another member or dissolve the group.",
        ),
        PendingTask(
            category=TaskCategory.ACCOUNT_GROUP,
            item=f"account group g2-{a} (Platform)",
            message="You are a member of the group Platform.",
            resolution="Leave the group.",
        ),
        PendingTask(
            category=TaskCategory.AGENCY,
            item=f"agent relationship rel1-{a} with Globex",
            message="Globex acts as your agent.",
            resolution="End the agent relationship in the Partner Center.",
        ),
        PendingTask(
            category=TaskCategory.PARTNERSHIP,
            item=f"partner relationship rel2-{a} with Initech",
            message="You have an active partnership with Initech.",
            resolution="End the partnership in the Partner Center.",
        ),
        PendingTask(
            category=TaskCategory.AGENCY,
            item=f"reseller relationship rel3-{a} with Acme Resellers",
            message="Acme Resellers acts as your reseller.",
            resolution="End the reseller relationship in the Partner Center.",
        ),
        PendingTask(
            category=TaskCategory.CONTRACT,
            item=f"contract c1-{a} (Support 2026, runs until 2026-12-31)",
            message="The contract Support 2026 is not fulfilled yet.",
            resolution="Fulfil or terminate the contract with your account manager.",
        ),
        PendingTask(
            category=TaskCategory.CONTRACT,
            item=f"contract c2-{a} (Pilot)",
            message="The contract Pilot is not fulfilled yet.",
            resolution="Fulfil or terminate the contract with your account manager.",
        ),
        PendingTask(
            category=TaskCategory.ARREARS,
            item=f"bill b1-{a} (2026-10, 0.05 USD)",
            message="The bill for 2026-10 of 0.05 USD is unpaid.",
            resolution="Pay the bill in the Billing console.",
        ),
        PendingTask(
            category=TaskCategory.ARREARS,
            item=f"bill b2-{a} (2026-11, 99.00 USD)",
            message="The bill for 2026-11 of 99.00 USD is unpaid.",
            resolution="Pay the bill in the Billing console.",
        ),
    ]


async def test_every_task_is_worded_and_ordered_as_users_see_it(pool: asyncpg.Pool) -> None:
    account_id = await _register(pool)
    await _attach_every_variant(pool, account_id)
    await _attach_every_variant(pool, await _register(pool))

    ref = AccountRef(account_id=account_id, workflow_id=workflow_id_for(account_id))
    report = await ActivityEnvironment().run(
        PrerequisiteActivities(pool, Catalog()).check_prerequisites, ref
    )

    assert report.pending_tasks == _expected(account_id)
