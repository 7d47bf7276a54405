"""Step 4 of the saga: every product's purge, in parallel, and what each has done so far.

Deterministic (no I/O): the products to purge come from a local activity recorded in history,
each purge is an activity of its own, retried on transient faults; a purge that cannot finish
becomes a pending task, and only the failed ones run again when retried.
"""

from __future__ import annotations

import asyncio
import hashlib

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.purge import PurgeActivities
    from contract.errors import PURGE_REFUSED, UNKNOWN_PRODUCT
    from contract.models import (
        CarriedState,
        DeletionPolicy,
        PendingTask,
        ProductProgress,
        ProductReceipt,
        PurgeProductInput,
        PurgeState,
        TaskCategory,
    )
    from workflows.failures import error_message
    from workflows.policies import (
        DATABASE_RETRY,
        MAX_REPLANS,
        PURGE_TIMEOUT,
        SHORT,
        purge_retry,
        replan_backoff,
    )


class ProductPurges:
    def __init__(
        self, account_id: str, policy: DeletionPolicy, carried: CarriedState | None = None
    ) -> None:
        self._account_id = account_id
        self._policy = policy
        self.progress: dict[str, ProductProgress] = {
            p.product: p for p in (carried.products if carried else [])
        }
        """Each product's purge state, in the registry's order (the `status` query shows it)."""
        self.receipts: dict[str, ProductReceipt] = {
            r.product: r for r in (carried.receipts if carried else [])
        }
        self.registry_version: str | None = None
        """A digest of the product names of the registry the last plan read."""

    async def plan(self) -> int:
        """Adds the registry's products, recorded in history so that replays see the same
        list (a product added to the registry during a run is found by the next plan).
        Returns how many products it added."""
        products = await workflow.execute_local_activity_method(
            PurgeActivities.list_products,
            start_to_close_timeout=SHORT,
            retry_policy=DATABASE_RETRY,
        )
        known = len(self.progress)
        for product in products:
            self.progress.setdefault(product, ProductProgress(product=product))
        names = ",".join(sorted(products)).encode()
        self.registry_version = hashlib.sha256(names).hexdigest()[:12]
        return len(self.progress) - known

    async def purge_unfinished(self) -> list[PendingTask]:
        """Purges every product not purged yet, in parallel; returns a pending task for each
        purge that could not finish."""
        todo = [p for p in self.progress.values() if p.state is not PurgeState.SUCCEEDED]
        await asyncio.gather(*(self._purge(progress) for progress in todo))
        failed = [p for p in self.progress.values() if p.state is PurgeState.FAILED]
        return [_purge_failure(progress) for progress in failed]

    async def registry_mismatch(self, replans: int) -> list[PendingTask]:
        """After `replans` refused releases although every planned product is purged and
        planning again adds none: the releasing worker's registry lists a product this run's
        does not (workers of two versions). Backs off while a rollout finishes; after
        MAX_REPLANS, a pending task for the operators."""
        if replans < MAX_REPLANS:
            await workflow.sleep(replan_backoff(replans))
            return []
        return [
            PendingTask(
                category=TaskCategory.PURGE_FAILURE,
                item="product registry",
                message=(
                    "Identifiers cannot be released: a worker's product registry lists a "
                    f"product that this run's plan (registry {self.registry_version}) does not."
                ),
                resolution=(
                    "Deploy the same product registry to every worker, then retry the failed "
                    "purges."
                ),
            )
        ]

    def receipts_by_product(self) -> list[ProductReceipt]:
        return [self.receipts[name] for name in sorted(self.receipts)]

    async def _purge(self, progress: ProductProgress) -> None:
        progress.state = PurgeState.RUNNING
        progress.failure = None
        progress.attempts += 1
        try:
            receipt = await workflow.execute_activity_method(
                PurgeActivities.purge_product,
                PurgeProductInput(
                    account_id=self._account_id,
                    workflow_id=workflow.info().workflow_id,
                    product=progress.product,
                ),
                start_to_close_timeout=PURGE_TIMEOUT,
                heartbeat_timeout=self._policy.purge_heartbeat_timeout,
                retry_policy=purge_retry(
                    self._policy.purge_attempts, PURGE_REFUSED, UNKNOWN_PRODUCT
                ),
                summary=f"purge {progress.product}",
            )
        except ActivityError as error:
            progress.state = PurgeState.FAILED
            progress.failure = error_message(error)
            return
        self.receipts[progress.product] = receipt
        progress.state = PurgeState.SUCCEEDED
        progress.rows = receipt.rows


def _purge_failure(progress: ProductProgress) -> PendingTask:
    return PendingTask(
        category=TaskCategory.PURGE_FAILURE,
        product=progress.product,
        item=f"purge of {progress.product}",
        message=progress.failure or "the purge failed",
        resolution=(
            "The product team resolves the cause (for example lifts the hold); "
            "then an operator retries the failed purges."
        ),
    )
