"""The live-resource check of one product for one account: each row in a live state is a
pending task the user can act on (SPEC flow step 1). Read-only."""

from __future__ import annotations

from contract.models import PendingTask, TaskCategory
from kit.declarations import Connection, KitProduct


async def live_tasks(conn: Connection, product: KitProduct, account_id: str) -> list[PendingTask]:
    """One task per live resource of the account in the product, in declaration order."""
    tasks = []
    for live in product.live:
        for row in await conn.fetch(live.find_sql, account_id, list(live.live_states)):
            tasks.append(
                PendingTask(
                    category=TaskCategory.CLOUD_PRODUCT,
                    product=product.name,
                    item=f"{product.title}: {live.noun} {row['label']}",
                    message=f"The {live.noun} {row['label']} is still {row['state']}.",
                    resolution=live.resolution,
                )
            )
    return tasks
