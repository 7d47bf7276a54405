"""The prerequisite check: everything still attached to an account that blocks its deletion.

Read-only, and generic: what blocks is declared in the registry (products' live resources,
then `PREREQUISITES`); each row found becomes a pending task the user can act on.
"""

from __future__ import annotations

import asyncpg
import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contract.models import (
    AccountRef,
    PendingTask,
    PrerequisiteReport,
    ProductDriver,
    TaskCategory,
)
from contract.names import PLAIN_TEXT_PATTERN
from core.webhooks import SignedClient
from kit.live import live_tasks
from registry.catalog import Catalog, DeclaredProduct
from registry.prerequisites import PREREQUISITES

PRODUCT_UNAVAILABLE = "ProductUnavailable"
"""Retryable: an `http` product's live-resource API could not answer (the workflow retries
the check)."""


class LiveItem(BaseModel):
    """One live resource as an `http` product's `live_resources_url` lists it."""

    model_config = ConfigDict(extra="ignore")
    item: str = Field(min_length=1, max_length=500, pattern=PLAIN_TEXT_PATTERN)
    message: str = Field(min_length=1, max_length=1000, pattern=PLAIN_TEXT_PATTERN)
    resolution: str = Field(min_length=1, max_length=1000, pattern=PLAIN_TEXT_PATTERN)


class PrerequisiteActivities:
    """`products` signs the requests to `http` products' live-resource APIs; it is needed only
    when the catalog declares one."""

    def __init__(
        self, pool: asyncpg.Pool, catalog: Catalog, products: SignedClient | None = None
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self._live_apis = [p for p in catalog.of_driver(ProductDriver.HTTP) if p.live_resources_url]
        if self._live_apis and products is None:
            raise ValueError("http products with live_resources_url need a SignedClient")
        self._products = products

    @activity.defn
    async def check_prerequisites(self, ref: AccountRef) -> PrerequisiteReport:
        tasks: list[PendingTask] = []
        # One snapshot (repeatable read: read committed takes one per statement), so that the
        # tasks describe the account at one moment.
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            for product in self._catalog.sql:
                tasks += await live_tasks(conn, product, ref.account_id)
            for prerequisite in PREREQUISITES:
                tasks += map(prerequisite.task, await conn.fetch(prerequisite.sql, ref.account_id))
        for declared in self._live_apis:
            tasks += await self._live_over_http(declared, ref.account_id)
        activity.logger.info("prerequisite check found %d pending tasks", len(tasks))
        return PrerequisiteReport(
            pending_tasks=tasks,
            worker_products=[p.name for p in self._catalog.of_driver(ProductDriver.WORKER)],
        )

    async def _live_over_http(self, product: DeclaredProduct, account_id: str) -> list[PendingTask]:
        """`GET <live_resources_url>?account_id=`, signed: `[{"item", "message", "resolution"}]`.
        A product that cannot answer fails the check, which the workflow retries: deletion
        never goes on without its word."""
        assert self._products is not None and product.live_resources_url and product.secret
        try:
            response = await self._products.get(
                product.live_resources_url, product.secret, {"account_id": account_id}
            )
        except httpx.HTTPError as error:
            raise _unavailable(product, f"unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            raise _unavailable(product, f"answered HTTP {response.status_code}")
        try:
            items = _LIVE_ITEMS.validate_json(response.content)
        except ValidationError:
            raise _unavailable(product, "answered a malformed list") from None
        return [
            PendingTask(
                category=TaskCategory.CLOUD_PRODUCT,
                product=product.name,
                item=f"{product.title}: {live.item}",
                message=live.message,
                resolution=live.resolution,
            )
            for live in items
        ]


_LIVE_ITEMS = TypeAdapter(list[LiveItem])


def _unavailable(product: DeclaredProduct, what: str) -> ApplicationError:
    return ApplicationError(f"{product.name}'s live-resource API {what}", type=PRODUCT_UNAVAILABLE)
