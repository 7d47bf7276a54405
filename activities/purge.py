"""The purge of the built-in `sql` products, in this service's database, and the record of
every product purged elsewhere.

The purge itself is the product kit's engine (`kit.engine`: batches counted in the same
transaction that purges them, heartbeats, resume, probe), the same one a product team's
worker runs; this module adds what this database knows: legal holds refuse a purge, and each
completion is audited.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contract.errors import UNKNOWN_PRODUCT
from contract.models import (
    PlannedProduct,
    ProductReceipt,
    PurgeProductInput,
    RecordPurgeInput,
)
from kit.engine import HEARTBEAT_AFTER, PurgeEngine
from registry.catalog import Catalog
from registry.products import Product
from store.audit import audit
from store.db import Connection


class _ServiceLedger:
    """This database's word on a purge: an active legal hold refuses it, and the first
    completion is audited with the product's rows."""

    async def refusal(self, conn: Connection, product: Product, account_id: str) -> str | None:
        hold: str | None = await conn.fetchval(
            """
            select reason from legal_holds
            where account_id = $1 and product = $2 and lifted_at is null
            order by placed_at limit 1
            """,
            account_id,
            product.name,
        )
        return hold

    async def completed(
        self, conn: Connection, request: PurgeProductInput, receipt: ProductReceipt
    ) -> None:
        await audit(
            conn,
            request.account_id,
            request.workflow_id,
            "product_purged",
            product=receipt.product,
            rows=receipt.rows,
        )


class PurgeActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog: Catalog,
        *,
        batch_size: int = 5000,
        batch_budget: timedelta | None = None,
        heartbeat_after: timedelta = HEARTBEAT_AFTER,
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self._heartbeat_after = heartbeat_after
        self._ledger = _ServiceLedger()
        self._engine = PurgeEngine(
            pool,
            self._ledger,
            batch_size=batch_size,
            batch_budget=batch_budget,
            heartbeat_after=heartbeat_after,
        )

    @activity.defn
    async def list_products(self) -> list[str]:
        """The registry's product names: the plan of runs that began before drivers existed
        (their histories recorded this; `plan_products` replaced it)."""
        return self._catalog.names()

    @activity.defn
    async def plan_products(self) -> list[PlannedProduct]:
        """The registry's products with their drivers, for the workflow to record in its
        history (a replay plans the same products, a later plan sees a new one)."""
        return self._catalog.plan()

    @activity.defn
    async def record_product_purge(self, request: RecordPurgeInput) -> ProductReceipt:
        """Records that a product outside this database (worker, http, manual) finished, once:
        a repeat returns the first record's time. The release of identifiers waits for it."""
        done = request.receipt
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """
                insert into product_purges (account_id, product, workflow_id, verified_clean,
                                            driver, reported_rows, confirmed_by, completed_at)
                values ($1, $2, $3, $4, $5, $6, $7, $8)
                on conflict (account_id, product) do nothing
                returning completed_at
                """,
                request.account_id,
                done.product,
                request.workflow_id,
                done.verified_clean,
                done.driver.value,
                done.reported_rows,
                done.confirmed_by,
                done.completed_at,
            )
            if inserted is None:
                recorded = await conn.fetchrow(
                    "select completed_at, confirmed_by from product_purges"
                    " where account_id = $1 and product = $2",
                    request.account_id,
                    done.product,
                )
                assert recorded is not None
                return done.model_copy(update=dict(recorded))
            details: dict[str, object] = {"driver": done.driver.value, "rows": done.rows}
            if done.confirmed_by is not None:
                details["confirmed_by"] = done.confirmed_by
            await audit(
                conn,
                request.account_id,
                request.workflow_id,
                "product_purged",
                product=done.product,
                **details,
            )
        activity.logger.info("%s purge of %s recorded", done.driver.value, done.product)
        return done

    @activity.defn
    async def purge_product(self, request: PurgeProductInput) -> ProductReceipt:
        product = self._catalog.sql_product(request.product)
        if product is None:
            raise ApplicationError(
                f"no product named {request.product}", type=UNKNOWN_PRODUCT, non_retryable=True
            )
        return await self._engine.purge(product, request)

    async def purge_late_rows(self, account_id: str, workflow_id: str) -> dict[str, int]:
        """Purges again every product whose purge finished but that holds rows of the account
        again (written late: a run can wait for months in PURGE_BLOCKED while products keep
        writing). Called by `release_identifiers`, which releases nothing until every product
        probes clean. Counted in `purge_progress` like any batch, so the receipt includes them.

        Returns the rows purged per product now. A product under an active legal hold is not
        touched: the error is retryable, so the release waits, identifiers held, until it is
        lifted.
        """
        purged: dict[str, int] = {}
        for product in self._catalog.sql:
            request = PurgeProductInput(
                account_id=account_id, workflow_id=workflow_id, product=product.name
            )
            rows = await self._engine.purge_late_rows(product, request)
            if not rows:
                continue
            purged[product.name] = rows
            async with self._pool.acquire() as conn:
                await audit(
                    conn,
                    account_id,
                    workflow_id,
                    "late_rows_purged",
                    product=product.name,
                    rows=rows,
                )
        return purged
