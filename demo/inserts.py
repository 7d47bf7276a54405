"""The helper every scenario inserts its rows with."""

from __future__ import annotations

from dataclasses import dataclass

from store.db import Connection


@dataclass(frozen=True)
class Seed:
    """One scenario being seeded: ids are `<kind>-<token>-<name>`, unique to the account."""

    conn: Connection
    account_id: str
    scenario: str

    @property
    def token(self) -> str:
        return self.account_id.removeprefix("acct-")

    async def run(self, sql: str, *args: object) -> int:
        """Runs an insert with `$1` = account id, `$2` = token, then `args`; returns its rows."""
        return inserted(await self.conn.execute(sql, self.account_id, self.token, *args))

    async def run_for_account(self, sql: str, *args: object) -> int:
        """Runs an insert with `$1` = account id, then `args` (no token); returns its rows."""
        return inserted(await self.conn.execute(sql, self.account_id, *args))


def inserted(status: str) -> int:
    """The row count of an `INSERT 0 <rows>` status tag."""
    return int(status.rsplit(" ", 1)[-1])
