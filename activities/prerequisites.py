"""The prerequisite check: everything still attached to an account that blocks its deletion.

Read-only, and generic: what blocks is declared in the registry (products' live resources,
then `PREREQUISITES`); each row found becomes a pending task the user can act on.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from contract.models import (
    AccountRef,
    PendingTask,
    PrerequisiteReport,
    ProductDriver,
)
from kit.live import live_tasks
from registry.catalog import Catalog
from registry.prerequisites import PREREQUISITES


class PrerequisiteActivities:
    def __init__(self, pool: asyncpg.Pool, catalog: Catalog) -> None:
        self._pool = pool
        self._catalog = catalog

    @activity.defn
    async def check_prerequisites(self, ref: AccountRef) -> PrerequisiteReport:
        tasks: list[PendingTask] = []
        # One snapshot: the tasks describe the account at one moment.
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            for product in self._catalog.sql:
                tasks += await live_tasks(conn, product, ref.account_id)
            for prerequisite in PREREQUISITES:
                tasks += map(prerequisite.task, await conn.fetch(prerequisite.sql, ref.account_id))
        activity.logger.info("prerequisite check found %d pending tasks", len(tasks))
        return PrerequisiteReport(
            pending_tasks=tasks,
            worker_products=[p.name for p in self._catalog.of_driver(ProductDriver.WORKER)],
        )
