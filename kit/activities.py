"""A `worker` product's two activities, as its own worker serves them on task queue
`account-deletion-product-<name>`: the live-resource check and the purge.

The deletion workflow calls them by name (`contract.names`). Its live-resource check is
skipped when the product's worker is down, so the purge checks again itself and refuses
(non-retryable `PurgeRefused`, naming them) while any resource is live.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contract.errors import PURGES_UNFINISHED, UNKNOWN_PRODUCT
from contract.models import (
    LiveResourcesInput,
    PendingTask,
    ProductDriver,
    ProductReceipt,
    PurgeProductInput,
)
from contract.names import (
    PRODUCT_LATE_ROWS_ACTIVITY,
    PRODUCT_LIVE_RESOURCES_ACTIVITY,
    PRODUCT_PURGE_ACTIVITY,
)
from kit.declarations import Connection, KitProduct
from kit.engine import HEARTBEAT_AFTER, PurgeEngine
from kit.live import live_tasks


class _LiveResourcesRefuse:
    """The product's own ledger: no legal holds here, but live resources refuse the purge."""

    async def refusal(self, conn: Connection, product: KitProduct, account_id: str) -> str | None:
        tasks = await live_tasks(conn, product, account_id)
        if not tasks:
            return None
        return "live resources: " + "; ".join(task.message for task in tasks)

    async def completed(
        self, conn: Connection, request: PurgeProductInput, receipt: ProductReceipt
    ) -> None:
        """The completion row is the record: the deletion service audits the receipt."""


class ProductActivities:
    """The activities of one kit product, bound to the pool of the product's own database."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        product: KitProduct,
        *,
        batch_size: int = 5000,
        batch_budget: timedelta | None = None,
        heartbeat_after: timedelta = HEARTBEAT_AFTER,
    ) -> None:
        self._pool = pool
        self._product = product
        self._engine = PurgeEngine(
            pool,
            _LiveResourcesRefuse(),
            driver=ProductDriver.WORKER,
            batch_size=batch_size,
            batch_budget=batch_budget,
            heartbeat_after=heartbeat_after,
        )

    @activity.defn(name=PRODUCT_LIVE_RESOURCES_ACTIVITY)
    async def find_live_resources(self, request: LiveResourcesInput) -> list[PendingTask]:
        """The account's live resources in this product, as pending tasks."""
        self._check(request.product)
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            tasks = await live_tasks(conn, self._product, request.account_id)
        activity.logger.info("%s: %d live resources", self._product.name, len(tasks))
        return tasks

    @activity.defn(name=PRODUCT_PURGE_ACTIVITY)
    async def purge_product(self, request: PurgeProductInput) -> ProductReceipt:
        """Batched, heartbeating, exactly-once in effect; refuses while resources are live."""
        self._check(request.product)
        return await self._engine.purge(self._product, request)

    @activity.defn(name=PRODUCT_LATE_ROWS_ACTIVITY)
    async def purge_late_rows(self, request: PurgeProductInput) -> ProductReceipt:
        """Just before identifiers are released: what the product wrote since its purge is
        purged again (retryable while resources are live), and the receipt counts it."""
        self._check(request.product)
        async with self._pool.acquire() as conn:
            if await self._engine.completed_at(conn, request.account_id, request.product) is None:
                raise ApplicationError(
                    f"the purge of {request.product} never completed: nothing to check again",
                    type=PURGES_UNFINISHED,
                    non_retryable=True,
                )
        rows = await self._engine.purge_late_rows(self._product, request)
        if rows:
            activity.logger.info("%s: %d late rows purged", self._product.name, rows)
        return await self._engine.receipt(request, self._product)

    def _check(self, name: str) -> None:
        if name != self._product.name:
            raise ApplicationError(
                f"this worker serves {self._product.name}, not {name}",
                type=UNKNOWN_PRODUCT,
                non_retryable=True,
            )
