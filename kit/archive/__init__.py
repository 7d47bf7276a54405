"""The example product `archive` (cold-storage archives: vaults, archived objects, retrieval
jobs), built with the kit as a product team would: its own schema in its own database
(ARCHIVE_DATABASE_URL), its declaration, and its worker, run by
`account-deletion product-worker archive`."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from kit.archive.product import ARCHIVE, NAME
from kit.archive.schema import SCHEMA
from kit.archive.seed import ArchiveData, seed_archive
from kit.worker import run_product_worker

__all__ = ["ARCHIVE", "NAME", "SCHEMA", "ArchiveData", "run_archive_worker", "seed_archive"]


async def run_archive_worker(
    client: Client,
    database_url: str,
    *,
    batch_size: int = 5000,
    batch_budget: timedelta | None = None,
    shutdown: timedelta = timedelta(seconds=30),
) -> None:
    """Creates the archive's schema if missing and serves its purge until SIGTERM/SIGINT."""
    await run_product_worker(
        client,
        database_url,
        ARCHIVE,
        schema=SCHEMA,
        batch_size=batch_size,
        batch_budget=batch_budget,
        shutdown=shutdown,
    )
