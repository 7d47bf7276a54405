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

What each scenario inserts is in `demo.scenarios`; the residual product data of deleted
resources (and the `large` scenario's `DemoSizes`) in `demo.residual`.
"""

from __future__ import annotations

import logging
import time

import asyncpg

from accounts.registration import IdentifierTaken, register_account
from demo.inserts import Seed
from demo.residual import DEFAULT_SIZES, DemoSizes
from demo.scenarios import BUILDERS, SCENARIOS, demo_request
from store.db import Connection

__all__ = [
    "SCENARIOS",
    "SEEDED_EVENT",
    "DemoAccountConflict",
    "DemoSizes",
    "demo_request",
    "find_demo_account",
    "seed_demo",
    "seed_scenario",
]

logger = logging.getLogger(__name__)

SEEDED_EVENT = "demo_seeded"
"""The audit event kind that marks a demo account's data as complete."""


class DemoAccountConflict(RuntimeError):
    """A demo identifier is held by an account that is not that scenario's demo account."""


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
        rows = await BUILDERS[scenario](Seed(conn, account_id, scenario), sizes)
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
