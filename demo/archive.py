"""The demo accounts' data in the example product `archive`, seeded through the archive's own
database (another team's: nothing of it is in this service's)."""

from __future__ import annotations

import asyncpg

from kit.archive import SCHEMA, ArchiveData, seed_archive
from kit.schema import ensure_schema

ARCHIVE_DATA = {
    "clean": ArchiveData(),
    "blocked": ArchiveData(live=True),
    "legal_hold": ArchiveData(),
    "large": ArchiveData(vaults=4, objects=2500, log_lines=250),
}
"""Per scenario: residual archives everywhere, live vaults and a retrieval for `blocked`, and
ten thousand archived objects for `large`."""


async def seed_demo_archive(
    pool: asyncpg.Pool, archive: asyncpg.Pool, accounts: dict[str, str]
) -> dict[str, int]:
    """Seeds each active demo account's archive data once (an account being deleted, or
    whose archive data was purged, is left alone); returns the rows each account holds."""
    await ensure_schema(archive, *SCHEMA)
    held = {}
    for scenario, account_id in accounts.items():
        status = await pool.fetchval(
            "select status from accounts where account_id = $1", account_id
        )
        if status == "active":
            rows = await seed_archive(archive, account_id, ARCHIVE_DATA[scenario])
            held[account_id] = sum(rows.values())
    return held
