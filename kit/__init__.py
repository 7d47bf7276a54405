"""The product kit: what a product team needs to purge its own data when an account is
deleted (SPEC "Products beyond this database", driver `worker`).

Declare the product's tables (or a custom purge) and live resources as a `KitProduct`; the
kit gives the batched, heartbeating, exactly-once purge, the live-resource check and the
verify-gone probe, and runs a worker on task queue `account-deletion-product-<name>` against
the team's own database (`run_product_worker`). `kit.archive` is a worked example. The
deletion service's built-in `sql` products are purged by the same engine.

Depends only on `contract`, `temporalio` and `asyncpg`.
"""

from kit.activities import ProductActivities
from kit.declarations import (
    CustomPurge,
    KitProduct,
    LiveResource,
    PurgeMethod,
    TablePurge,
)
from kit.engine import HEARTBEAT_AFTER, Heartbeat, Ledger, PurgeEngine
from kit.live import live_tasks
from kit.schema import BOOKKEEPING_SQL, ensure_schema
from kit.worker import product_worker, run_product_worker

__all__ = [
    "BOOKKEEPING_SQL",
    "HEARTBEAT_AFTER",
    "CustomPurge",
    "Heartbeat",
    "KitProduct",
    "Ledger",
    "LiveResource",
    "ProductActivities",
    "PurgeEngine",
    "PurgeMethod",
    "TablePurge",
    "ensure_schema",
    "live_tasks",
    "product_worker",
    "run_product_worker",
]
