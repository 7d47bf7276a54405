"""The prerequisite check: everything still attached to an account that blocks its deletion.

Read-only. Each finding becomes a pending task the user can act on.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from contract.models import AccountRef, PendingTask, PrerequisiteReport, TaskCategory
from registry.products import PRODUCTS
from store.db import Connection


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


class PrerequisiteActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def check_prerequisites(self, ref: AccountRef) -> PrerequisiteReport:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            tasks = await _live_resources(conn, ref.account_id)
            tasks += await _business(conn, ref.account_id)
        activity.logger.info("prerequisite check found %d pending tasks", len(tasks))
        return PrerequisiteReport(pending_tasks=tasks)


async def _live_resources(conn: Connection, account_id: str) -> list[PendingTask]:
    tasks = []
    for product in PRODUCTS:
        for live in product.live:
            for row in await conn.fetch(live.find_sql, account_id, list(live.live_states)):
                tasks.append(
                    PendingTask(
                        category=TaskCategory.CLOUD_PRODUCT,
                        product=product.name,
                        item=f"{product.title}: {live.noun} {row['label']}",
                        message=f"The {live.noun} {row['label']} is still {row['state']}.",
                        resolution=live.resolution,
                    )
                )
    return tasks


async def _business(conn: Connection, account_id: str) -> list[PendingTask]:
    tasks = []
    balance = await conn.fetchrow(
        "select funds_cents, currency from account_balances "
        "where account_id = $1 and funds_cents > 0",
        account_id,
    )
    if balance:
        amount = _money(balance["funds_cents"], balance["currency"])
        tasks.append(
            PendingTask(
                category=TaskCategory.BALANCE_FUNDS,
                item=f"account balance {amount}",
                message=f"Your account still holds {amount} of funds.",
                resolution="Withdraw the balance to your payment method or spend it first.",
            )
        )
    for row in await conn.fetch(
        """
        select g.group_id, g.name, m.role from group_memberships m
        join account_groups g using (group_id)
        where m.account_id = $1 order by g.group_id
        """,
        account_id,
    ):
        owner = row["role"] == "owner"
        tasks.append(
            PendingTask(
                category=TaskCategory.ACCOUNT_GROUP,
                item=f"account group {row['group_id']} ({row['name']})",
                message=(
                    f"You are {'the owner' if owner else 'a member'} of the group {row['name']}."
                ),
                resolution=(
                    "Transfer ownership to another member or dissolve the group."
                    if owner
                    else "Leave the group."
                ),
            )
        )
    for row in await conn.fetch(
        """
        select relationship_id, kind, counterparty from partner_relationships
        where account_id = $1 and status = 'active' order by relationship_id
        """,
        account_id,
    ):
        agency = row["kind"] in ("agent", "reseller")
        tasks.append(
            PendingTask(
                category=TaskCategory.AGENCY if agency else TaskCategory.PARTNERSHIP,
                item=(
                    f"{row['kind']} relationship {row['relationship_id']}"
                    f" with {row['counterparty']}"
                ),
                message=(
                    f"{row['counterparty']} acts as your {row['kind']}."
                    if agency
                    else f"You have an active partnership with {row['counterparty']}."
                ),
                resolution=(
                    f"End the {row['kind']} relationship in the Partner Center."
                    if agency
                    else "End the partnership in the Partner Center."
                ),
            )
        )
    for row in await conn.fetch(
        """
        select contract_id, title, ends_on from contracts
        where account_id = $1 and status = 'active' order by contract_id
        """,
        account_id,
    ):
        ends = f", runs until {row['ends_on']:%Y-%m-%d}" if row["ends_on"] else ""
        tasks.append(
            PendingTask(
                category=TaskCategory.CONTRACT,
                item=f"contract {row['contract_id']} ({row['title']}{ends})",
                message=f"The contract {row['title']} is not fulfilled yet.",
                resolution="Fulfil or terminate the contract with your account manager.",
            )
        )
    for row in await conn.fetch(
        """
        select bill_id, period, amount_cents, currency from bills
        where account_id = $1 and status = 'unpaid' order by bill_id
        """,
        account_id,
    ):
        amount = _money(row["amount_cents"], row["currency"])
        tasks.append(
            PendingTask(
                category=TaskCategory.ARREARS,
                item=f"bill {row['bill_id']} ({row['period']}, {amount})",
                message=f"The bill for {row['period']} of {amount} is unpaid.",
                resolution="Pay the bill in the Billing console.",
            )
        )
    return tasks
