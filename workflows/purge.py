"""Step 4 of the saga: every product's purge, in parallel, and what each has done so far.

Deterministic (no I/O): the products to purge come from a local activity recorded in history,
each purge is an activity of its own, retried on transient faults; a purge that cannot finish
becomes a pending task, and only the failed ones run again when retried. Each product's driver
says who purges it: this worker (`sql`), the product's own worker (`worker`), its deletion API
(`http`), or a person an operator vouches for (`manual`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.purge import PurgeActivities
    from contract.errors import PURGE_REFUSED, UNKNOWN_PRODUCT, WRONG_STAGE
    from contract.models import (
        CarriedState,
        ConfirmPurgeInput,
        DeletionPolicy,
        PendingTask,
        PlannedProduct,
        ProductDriver,
        ProductProgress,
        ProductReceipt,
        PurgeProductInput,
        PurgeState,
        TaskCategory,
    )
    from workflows import product_calls
    from workflows.failures import error_message
    from workflows.patches import LATE_ROWS_OF_PRODUCT_WORKERS, PRODUCT_DRIVERS, Patches
    from workflows.policies import (
        DATABASE_RETRY,
        MAX_REPLANS,
        PURGE_TIMEOUT,
        SHORT,
        purge_retry,
        replan_backoff,
    )


Show = Callable[[], Awaitable[None]]


class ProductPurges:
    def __init__(
        self,
        account_id: str,
        policy: DeletionPolicy,
        patches: Patches,
        carried: CarriedState | None = None,
    ) -> None:
        self._account_id = account_id
        self._patches = patches
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
        self.planned: dict[str, PlannedProduct] = {}
        self.confirmed_by: dict[str, str] = {}
        """`manual` products an operator confirmed, and who."""
        self._show: Show | None = None

    async def plan(self) -> int:
        """Adds the registry's products, recorded in history so that replays see the same
        list (a product added to the registry during a run is found by the next plan).
        Returns how many products it added."""
        if self._patches.has(PRODUCT_DRIVERS):
            planned = await workflow.execute_local_activity_method(
                PurgeActivities.plan_products,
                start_to_close_timeout=SHORT,
                retry_policy=DATABASE_RETRY,
            )
        else:
            listed = await workflow.execute_local_activity_method(
                PurgeActivities.list_products,
                start_to_close_timeout=SHORT,
                retry_policy=DATABASE_RETRY,
            )
            planned = [PlannedProduct(name=name) for name in listed]
        known = len(self.progress)
        for product in planned:
            self.planned[product.name] = product
            self.progress.setdefault(
                product.name, ProductProgress(product=product.name, driver=product.driver)
            )
        names = ",".join(sorted(p.name for p in planned)).encode()
        self.registry_version = hashlib.sha256(names).hexdigest()[:12]
        return len(self.progress) - known

    async def purge_unfinished(self, show: Show) -> list[PendingTask]:
        """Purges every product not purged yet, in parallel; returns a pending task for each
        purge that could not finish. `show` makes the run show what it waits on (a `manual`
        product's task) while the others go on."""
        self._show = show
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

    def waiting_on_people(self) -> list[PendingTask]:
        """A task for each `manual` product awaiting an operator's confirmation."""
        return [
            _confirmation_task(self.planned.get(p.product), p.product)
            for p in self.progress.values()
            if p.state is PurgeState.AWAITING_CONFIRMATION
        ]

    def tasks_so_far(self) -> list[PendingTask]:
        """While the purges run: the failed ones and those waiting on people."""
        failed = [p for p in self.progress.values() if p.state is PurgeState.FAILED]
        return [_purge_failure(p) for p in failed] + self.waiting_on_people()

    def refuse_confirmation(self, request: ConfirmPurgeInput) -> None:
        """Only a `manual` product that awaits confirmation, once (the update's validator)."""
        progress = self.progress.get(request.product)
        if progress is None or progress.driver is not ProductDriver.MANUAL:
            raise ApplicationError(
                f"{request.product} is not a manual product of this deletion", type=UNKNOWN_PRODUCT
            )
        if progress.state is not PurgeState.AWAITING_CONFIRMATION:
            raise ApplicationError(
                f"the purge of {request.product} is {progress.state.value}, not awaiting"
                " confirmation",
                type=WRONG_STAGE,
            )
        if request.product in self.confirmed_by:
            raise ApplicationError(
                f"the purge of {request.product} is already confirmed", type=WRONG_STAGE
            )

    def confirm(self, request: ConfirmPurgeInput) -> None:
        self.confirmed_by[request.product] = request.confirmed_by

    async def purge_late_rows_of_own_workers(self) -> None:
        """Before identifiers are released: each `worker` product's worker purges again what was
        written since its purge (the deletion worker does so for the built-in ones in
        `release_identifiers`); their receipts then count those rows too."""
        own = [n for n, p in self.progress.items() if p.driver is ProductDriver.WORKER]
        if not own or not self._patches.has(LATE_ROWS_OF_PRODUCT_WORKERS):
            return
        workflow_id = workflow.info().workflow_id
        receipts = await asyncio.gather(
            *(
                product_calls.late_rows_on_product_worker(
                    PurgeProductInput(
                        account_id=self._account_id, workflow_id=workflow_id, product=name
                    ),
                    self._policy,
                )
                for name in own
            )
        )
        for receipt in receipts:
            self.receipts[receipt.product] = receipt
            self.progress[receipt.product].rows = receipt.rows

    def receipts_by_product(self) -> list[ProductReceipt]:
        return [self.receipts[name] for name in sorted(self.receipts)]

    async def _purge(self, progress: ProductProgress) -> None:
        progress.state = PurgeState.RUNNING
        progress.since = workflow.now()
        progress.failure = None
        progress.attempts += 1
        request = PurgeProductInput(
            account_id=self._account_id,
            workflow_id=workflow.info().workflow_id,
            product=progress.product,
        )
        try:
            receipt = await self._by_driver(progress, request)
        except ActivityError as error:
            progress.state = PurgeState.FAILED
            progress.since = workflow.now()
            progress.failure = error_message(error)
            if self._show is not None and self.waiting_on_people():
                await self._show()  # shown now: the run waits on people before PURGE_BLOCKED
            return
        self.receipts[progress.product] = receipt
        progress.state = PurgeState.SUCCEEDED
        progress.since = workflow.now()
        progress.rows = receipt.rows

    async def _by_driver(
        self, progress: ProductProgress, request: PurgeProductInput
    ) -> ProductReceipt:
        if progress.driver is ProductDriver.SQL:
            return await workflow.execute_activity_method(
                PurgeActivities.purge_product,
                request,
                start_to_close_timeout=PURGE_TIMEOUT,
                heartbeat_timeout=self._policy.purge_heartbeat_timeout,
                retry_policy=purge_retry(
                    self._policy.purge_attempts, PURGE_REFUSED, UNKNOWN_PRODUCT
                ),
                summary=f"purge {progress.product}",
            )
        if progress.driver is ProductDriver.WORKER:
            done = await product_calls.purge_on_product_worker(request, self._policy)
        elif progress.driver is ProductDriver.HTTP:
            done = await product_calls.purge_over_http(request, self._policy)
        else:
            done = await self._confirmed_by_an_operator(progress)
        return await product_calls.record_purge(request, done)

    async def _confirmed_by_an_operator(self, progress: ProductProgress) -> ProductReceipt:
        """A `manual` product: its task shows until an operator confirms a person purged it."""
        progress.state = PurgeState.AWAITING_CONFIRMATION
        if self._show is not None:
            await self._show()
        await workflow.wait_condition(lambda: progress.product in self.confirmed_by)
        progress.state = PurgeState.RUNNING
        if self._show is not None:
            await self._show()
        return ProductReceipt(
            product=progress.product,
            tables=[],
            completed_at=workflow.now(),
            verified_clean=False,
            driver=ProductDriver.MANUAL,
            confirmed_by=self.confirmed_by[progress.product],
        )


def _confirmation_task(planned: PlannedProduct | None, product: str) -> PendingTask:
    instructions = planned.instructions if planned and planned.instructions else None
    return PendingTask(
        category=TaskCategory.MANUAL_PURGE,
        product=product,
        item=f"manual purge of {product}",
        message=instructions or f"A person must purge {product} by hand.",
        resolution=(
            "Once done, an operator confirms: account-deletion confirm-purge <account> "
            f"{product} --by <operator>"
        ),
    )


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
