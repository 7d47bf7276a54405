"""How far an account's purge has come: the rows each product's purge has removed so far."""

from __future__ import annotations

import asyncpg

from store.db import Connection


async def rows_purged(db: asyncpg.Pool | Connection, account_id: str) -> dict[str, int]:
    """Per product, the rows its purge has removed so far (committed batch by batch, so a
    running or failed purge shows what it has done); products not begun are absent."""
    return {
        row["product"]: int(row["rows"])
        for row in await db.fetch(
            "select product, sum(rows)::bigint as rows from purge_progress"
            " where account_id = $1 group by product",
            account_id,
        )
    }
