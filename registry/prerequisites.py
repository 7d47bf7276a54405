"""What else blocks an account's deletion, besides products' live resources: SPEC's other
prerequisite categories, each declared once as data.

Adding a category is adding a declaration here: the prerequisite check runs every query in
this order and makes each row one pending task. `tests/test_prerequisites.py` fails when a
category has no declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asyncpg import Record

from contract.models import PendingTask, TaskCategory


@dataclass(frozen=True)
class Prerequisite:
    """Every row `sql` finds blocks the deletion: it becomes one pending task."""

    categories: tuple[TaskCategory, ...]
    """Its tasks' category, or those `category_of` picks from (the registry's table of
    contents: the tests check every category is declared)."""
    sql: str
    """Plain SQL, `$1` the account id, ordered: the tasks keep the rows' order."""
    item: Callable[[Record], str]
    message: Callable[[Record], str]
    resolution: Callable[[Record], str]
    category_of: Callable[[Record], TaskCategory] | None = None
    """For one query finding several categories, so that their rows keep one order."""

    def __post_init__(self) -> None:
        if not self.categories or (len(self.categories) > 1) != (self.category_of is not None):
            raise ValueError(f"{self.categories}: one category, or several and category_of")

    def task(self, row: Record) -> PendingTask:
        category = self.category_of(row) if self.category_of else self.categories[0]
        return PendingTask(
            category=category,
            item=self.item(row),
            message=self.message(row),
            resolution=self.resolution(row),
        )


def _amount(row: Record) -> str:
    """A row's `amount_cents` in its `currency`, as users read money: `1,234.50 EUR`."""
    return f"{row['amount_cents'] / 100:,.2f} {row['currency']}"


def _owner(row: Record) -> bool:
    return bool(row["role"] == "owner")


def _agency(row: Record) -> bool:
    """Agents and resellers act for the account; any other relationship is a partnership."""
    return row["kind"] in ("agent", "reseller")


def _until(row: Record) -> str:
    return f", runs until {row['ends_on']:%Y-%m-%d}" if row["ends_on"] else ""


PREREQUISITES: tuple[Prerequisite, ...] = (
    Prerequisite(
        categories=(TaskCategory.BALANCE_FUNDS,),
        sql="""
        select funds_cents as amount_cents, currency from account_balances
        where account_id = $1 and funds_cents > 0
        """,
        item=lambda row: f"account balance {_amount(row)}",
        message=lambda row: f"Your account still holds {_amount(row)} of funds.",
        resolution=lambda row: "Withdraw the balance to your payment method or spend it first.",
    ),
    Prerequisite(
        categories=(TaskCategory.ACCOUNT_GROUP,),
        sql="""
        select g.group_id, g.name, m.role from group_memberships m
        join account_groups g using (group_id)
        where m.account_id = $1 order by g.group_id
        """,
        item=lambda row: f"account group {row['group_id']} ({row['name']})",
        message=lambda row: (
            f"You are {'the owner' if _owner(row) else 'a member'} of the group {row['name']}."
        ),
        resolution=lambda row: (
            "Transfer ownership to another member or dissolve the group."
            if _owner(row)
            else "Leave the group."
        ),
    ),
    Prerequisite(
        categories=(TaskCategory.AGENCY, TaskCategory.PARTNERSHIP),
        sql="""
        select relationship_id, kind, counterparty from partner_relationships
        where account_id = $1 and status = 'active' order by relationship_id
        """,
        category_of=lambda row: TaskCategory.AGENCY if _agency(row) else TaskCategory.PARTNERSHIP,
        item=lambda row: (
            f"{row['kind']} relationship {row['relationship_id']} with {row['counterparty']}"
        ),
        message=lambda row: (
            f"{row['counterparty']} acts as your {row['kind']}."
            if _agency(row)
            else f"You have an active partnership with {row['counterparty']}."
        ),
        resolution=lambda row: (
            f"End the {row['kind']} relationship in the Partner Center."
            if _agency(row)
            else "End the partnership in the Partner Center."
        ),
    ),
    Prerequisite(
        categories=(TaskCategory.CONTRACT,),
        sql="""
        select contract_id, title, ends_on from contracts
        where account_id = $1 and status = 'active' order by contract_id
        """,
        item=lambda row: f"contract {row['contract_id']} ({row['title']}{_until(row)})",
        message=lambda row: f"The contract {row['title']} is not fulfilled yet.",
        resolution=lambda row: "Fulfil or terminate the contract with your account manager.",
    ),
    Prerequisite(
        categories=(TaskCategory.ARREARS,),
        sql="""
        select bill_id, period, amount_cents, currency from bills
        where account_id = $1 and status = 'unpaid' order by bill_id
        """,
        item=lambda row: f"bill {row['bill_id']} ({row['period']}, {_amount(row)})",
        message=lambda row: f"The bill for {row['period']} of {_amount(row)} is unpaid.",
        resolution=lambda row: "Pay the bill in the Billing console.",
    ),
)
"""In the order they are checked, after products' live resources."""
