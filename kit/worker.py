"""A product team's purge worker: the kit's activities for one product on task queue
`account-deletion-product-<name>`, against the team's own database."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from contract.names import product_task_queue
from kit.activities import ProductActivities
from kit.declarations import KitProduct
from kit.schema import ensure_schema

logger = logging.getLogger(__name__)


def product_worker(
    client: Client,
    pool: asyncpg.Pool,
    product: KitProduct,
    *,
    batch_size: int = 5000,
    batch_budget: timedelta | None = None,
    shutdown: timedelta = timedelta(seconds=30),
    max_concurrent_activities: int = 20,
) -> Worker:
    """The worker of `product`. `client` must use the deployment's data converter (pydantic,
    and the payload codec of PAYLOAD_KEYS): the workflow's inputs arrive encrypted. Purge
    batches of `batch_size` rows, or with a `batch_budget`, sized to take about that long."""
    activities = ProductActivities(pool, product, batch_size=batch_size, batch_budget=batch_budget)
    return Worker(
        client,
        task_queue=product_task_queue(product.name),
        activities=[
            activities.purge_product,
            activities.find_live_resources,
            activities.purge_late_rows,
        ],
        graceful_shutdown_timeout=shutdown,
        max_concurrent_activities=max_concurrent_activities,
    )


async def run_product_worker(
    client: Client,
    database_url: str,
    product: KitProduct,
    *,
    schema: tuple[str, ...] = (),
    batch_size: int = 5000,
    batch_budget: timedelta | None = None,
    shutdown: timedelta = timedelta(seconds=30),
    pool_size: int = 10,
    stop: asyncio.Event | None = None,
) -> None:
    """Creates the kit's bookkeeping and the product's own `schema` (idempotent statements)
    in the database at `database_url`, then serves the product until `stop` is set (SIGTERM
    or SIGINT when none is given); running purges get `shutdown` to finish."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=pool_size)
    try:
        await ensure_schema(pool, *schema)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        worker = product_worker(
            client,
            pool,
            product,
            batch_size=batch_size,
            batch_budget=batch_budget,
            shutdown=shutdown,
        )
        async with worker:
            logger.info(
                "%s worker polling task queue %s", product.name, product_task_queue(product.name)
            )
            await stop.wait()
            logger.info("%s worker stopping: finishing running purges", product.name)
    finally:
        await pool.close()
    logger.info("%s worker stopped", product.name)
