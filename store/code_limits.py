"""How many verification codes an account and its recipient were sent: the 24-hour limit that
holds across deletion runs (cancel and start again resets a run's own limits, not this one).

One query, `code_allowance`, serves the activity that issues codes (in the transaction that
records the code) and the client that refuses to start a deletion that could send none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from store.db import Connection

CODE_LIMIT = 10
"""Codes per account, and per recipient, in any `CODE_LIMIT_WINDOW`."""
CODE_LIMIT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class CodeAllowance:
    recipient_hash: bytes | None
    """The keyed hash of the account's recipient (email, else phone); None without either."""
    counted: bool
    """The challenge was counted already: a retry of a code that was allowed."""
    now: datetime
    next_code_at: datetime | None
    """When the account or its recipient may get a code again, if the limit is reached."""

    @property
    def retry_after(self) -> timedelta | None:
        """How long until the next code may be sent; None when one may be sent now."""
        if self.counted or self.next_code_at is None or self.next_code_at <= self.now:
            return None
        return self.next_code_at - self.now


_ALLOWANCE = """
with recipient as (
    select sha256(k.key || convert_to(coalesce(a.email, a.phone), 'UTF8')) as hash
    from accounts a cross join code_limit_key k
    where a.account_id = $1
)
select (select hash from recipient) as recipient_hash,
       exists (select 1 from verification_code_issues where challenge_id = $4) as counted,
       now() as now,
       -- The limit-th latest code leaves the window after it: then a code is allowed again.
       greatest(
           (select issued_at from verification_code_issues where account_id = $1
            order by issued_at desc offset $2 - 1 limit 1),
           (select issued_at from verification_code_issues
            where recipient_hash = (select hash from recipient)
            order by issued_at desc offset $2 - 1 limit 1)
       ) + $3::interval as next_code_at
"""


async def code_allowance(
    conn: Connection, account_id: str, challenge_id: uuid.UUID | None = None
) -> CodeAllowance:
    """Whether the account may be sent a code now (`retry_after` None) or when."""
    row = await conn.fetchrow(_ALLOWANCE, account_id, CODE_LIMIT, CODE_LIMIT_WINDOW, challenge_id)
    assert row is not None
    return CodeAllowance(row["recipient_hash"], row["counted"], row["now"], row["next_code_at"])


async def lock_recipient(conn: Connection, account_id: str) -> None:
    """Serialises, until the transaction ends, the codes issued to the account's recipient (and
    so to the account): two at once cannot both pass the limit."""
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended(coalesce(email, phone, account_id), 8))"
        " from accounts where account_id = $1",
        account_id,
    )


async def count_code(
    conn: Connection, account_id: str, challenge_id: uuid.UUID, recipient_hash: bytes
) -> None:
    """Counts the challenge's code (once), and forgets codes that left the window."""
    await conn.execute(
        """
        insert into verification_code_issues (challenge_id, account_id, recipient_hash)
        values ($1, $2, $3) on conflict (challenge_id) do nothing
        """,
        challenge_id,
        account_id,
        recipient_hash,
    )
    await conn.execute(
        """
        delete from verification_code_issues
        where (account_id = $1 or recipient_hash = $2) and issued_at < now() - $3::interval
        """,
        account_id,
        recipient_hash,
        CODE_LIMIT_WINDOW,
    )
