"""The product mixes the throughput benchmark runs with, each against its own bare shape.

- `sql`: the built-in products alone (the `throughput` benchmark as it always was).
- `worker`: those plus the kit's example product `archive` (driver `worker`), declared through
  a products file as `PRODUCTS_FILE` declares it, with its own database (created beside the
  stack's, dropped after) and its own worker, `kit.worker.product_worker`, in this process
  beside the deletion worker, as `account-deletion product-worker archive` would run it. Each
  deletion's account also has archive rows (`kit.archive.seed_archive`).
- `http`: those plus one `http` product answering `200 completed` at once: `BenchProduct` of
  the `http` benchmark, served by uvicorn in this process, verifying each signature.

A mix gives the saga's side (a stack whose settings declare its product, the product's data,
its worker) and the bare side: `BareRequest.products`, and a bare worker on the product's own
queue for a `worker` product. `activities_by_queue` counts what a history scheduled on each
queue, the bare product queue named as the saga's, so that the two shapes can be compared.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Worker

from benchmarks.bare import BareActivities, BareProduct
from benchmarks.harness import bare_task_queue
from benchmarks.http_driver import BenchProduct, serving
from benchmarks.stack import Stack, new_code_hash_key
from contract.models import DeletionReceipt, ProductDriver
from contract.names import product_task_queue
from kit.archive import ARCHIVE, SCHEMA, ArchiveData, seed_archive
from kit.schema import ensure_schema
from kit.worker import product_worker
from service.embedded import database_beside, ensure_database

MIXES = ("sql", "worker", "http")
HTTP_PRODUCT = "bench_http"
HTTP_ROWS = 7
"""What `BenchProduct` reports it removed."""


@dataclass
class Mix:
    """One mix: the saga's stack (its settings declare the mix's products) and the bare
    workflow's products; `archive` is the `worker` product's database, when there is one."""

    name: str
    stack: Stack
    bare_products: list[BareProduct] = field(default_factory=list)
    archive: asyncpg.Pool | None = None
    seeded_rows: dict[str, int] = field(default_factory=dict)
    """The `worker` product's rows of each account, as seeded."""

    @property
    def product(self) -> str | None:
        return self.bare_products[0].name if self.bare_products else None

    async def seed(self, account_ids: Sequence[str], rows_per_product: int) -> None:
        """The mix's product data of each account (the `worker` product's own database)."""
        if self.archive is None:
            return
        archive = self.archive
        data = ArchiveData(vaults=2, objects=max(1, rows_per_product // 2), jobs=2, log_lines=5)
        gate = asyncio.Semaphore(8)

        async def one(account_id: str) -> None:
            async with gate:
                rows = await seed_archive(archive, account_id, data)
            self.seeded_rows[account_id] = sum(rows.values())

        await asyncio.gather(*(one(a) for a in account_ids))

    def check(self, receipts: Sequence[DeletionReceipt]) -> None:
        """Each receipt lists the mix's product, by its driver, with the rows it removed."""
        if self.product is None:
            return
        wrong = []
        for receipt in receipts:
            lines = [p for p in receipt.products if p.product == self.product]
            if self.name == "worker":
                expected = self.seeded_rows[receipt.account_id]
                rows = sum(t.rows for line in lines for t in line.tables)
            else:
                expected, rows = HTTP_ROWS, sum(line.reported_rows or 0 for line in lines)
            if len(lines) != 1 or lines[0].driver.value != self.name or rows != expected:
                wrong.append(receipt.account_id)
        if wrong:
            raise RuntimeError(f"receipts without {self.product}'s purge as seeded: {wrong}")

    @asynccontextmanager
    async def saga_workers(self) -> AsyncIterator[None]:
        """The product's own worker, for a `worker` product, in this process."""
        if self.archive is None:
            yield
            return
        worker = product_worker(
            self.stack.client,
            self.archive,
            ARCHIVE,
            batch_size=self.stack.settings.purge_batch_size,
        )
        async with worker:
            yield

    @asynccontextmanager
    async def bare_workers(self) -> AsyncIterator[None]:
        """A bare worker on each product queue of the bare shape (no-op bodies)."""
        async with AsyncExitStack() as workers:
            for product in self.bare_products:
                if product.task_queue is None:
                    continue
                await workers.enter_async_context(
                    Worker(
                        self.stack.client,
                        task_queue=product.task_queue,
                        activities=[BareActivities(_no_relay).step],
                        max_concurrent_activities=20,  # as kit.worker.product_worker's
                    )
                )
            yield

    def activities_by_queue(self, history: WorkflowHistory) -> dict[str, int]:
        """Activities a run scheduled, by task queue: `run` for the run's own, a product's
        queue by the saga's name of it (the bare one's is named after it)."""
        own = {self.stack.settings.temporal_task_queue, bare_task_queue(self.stack)}
        renamed = {
            p.task_queue: product_task_queue(p.name) for p in self.bare_products if p.task_queue
        }
        queues: Counter[str] = Counter()
        for event in history.events:
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                continue
            queue = event.activity_task_scheduled_event_attributes.task_queue.name
            queues["run" if queue in own else renamed.get(queue, queue)] += 1
        return dict(sorted(queues.items()))


async def _no_relay(account_id: str, code: str) -> None:
    raise AssertionError("a product queue's bare worker issues no code")


@asynccontextmanager
async def mix_of(name: str, stack: Stack) -> AsyncIterator[Mix]:
    """The mix `name` on `stack`; what it set up (a database, a server) is gone after."""
    if name == "sql":
        yield Mix(name, stack)
    elif name == "worker":
        async with _worker_mix(stack) as mix:
            yield mix
    elif name == "http":
        async with _http_mix(stack) as mix:
            yield mix
    else:
        raise ValueError(f"no product mix named {name}; choose from {', '.join(MIXES)}")


def _declaring(stack: Stack, folder: Path, entry: str) -> Stack:
    """`stack` with a products file declaring `entry` (a `[[product]]` table)."""
    products_file = folder / "products.toml"
    products_file.write_text(entry)
    return replace(
        stack, settings=stack.settings.model_copy(update={"products_file": products_file})
    )


@asynccontextmanager
async def _worker_mix(stack: Stack) -> AsyncIterator[Mix]:
    server = stack.settings.database_url
    assert server is not None
    database = f"archive_bench_{uuid.uuid4().hex[:12]}"
    await ensure_database(server, database)
    try:
        archive = await asyncpg.create_pool(
            database_beside(server, database), min_size=1, max_size=10
        )
        try:
            await ensure_schema(archive, *SCHEMA)
            with tempfile.TemporaryDirectory() as folder:
                entry = '[[product]]\nname = "archive"\ndriver = "worker"\ntitle = "Archive"\n'
                bare_queue = f"{bare_task_queue(stack)}-product-{ARCHIVE.name}"
                yield Mix(
                    "worker",
                    _declaring(stack, Path(folder), entry),
                    [
                        BareProduct(
                            name=ARCHIVE.name,
                            driver=ProductDriver.WORKER.value,
                            task_queue=bare_queue,
                        )
                    ],
                    archive=archive,
                )
        finally:
            await archive.close()
    finally:
        await stack.pool.execute(f'drop database if exists "{database}" with (force)')


@asynccontextmanager
async def _http_mix(stack: Stack) -> AsyncIterator[Mix]:
    secret = "whsec_" + new_code_hash_key().split(":", 1)[1]
    product = BenchProduct("200", secret)
    try:
        async with serving(product.app()) as url:
            with tempfile.TemporaryDirectory() as folder:
                entry = (
                    f'[[product]]\nname = "{HTTP_PRODUCT}"\ndriver = "http"\n'
                    f'url = "{url}/deletions"\nsecret = "{secret}"\n'
                )
                yield Mix(
                    "http",
                    _declaring(stack, Path(folder), entry),
                    [BareProduct(name=HTTP_PRODUCT, driver=ProductDriver.HTTP.value)],
                )
    finally:
        await product.http.aclose()
