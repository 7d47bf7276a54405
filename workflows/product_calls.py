"""The activities of products beyond this database, as the saga calls them (SPEC "Products
beyond this database"): a `worker` product's own worker, on its own task queue; an `http`
product's deletion API; and the record in `product_purges` of every product that finished
outside this database.

Deterministic (no I/O). A `worker` product's activities are called by name: their code is the
product team's (`kit`), run by its worker; until that worker polls, the activity waits,
scheduled, and the run with it (nothing is lost, nothing released).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities.http_products import HttpProductActivities
    from activities.purge import PurgeActivities
    from contract.errors import (
        PRODUCT_API_REFUSED,
        PRODUCT_PURGE_FAILED,
        PURGE_REFUSED,
        UNKNOWN_PRODUCT,
    )
    from contract.models import (
        AccountRef,
        DeletionPolicy,
        LiveResourcesInput,
        PendingTask,
        ProductReceipt,
        PurgeProductInput,
        RecordPurgeInput,
    )
    from contract.names import (
        PRODUCT_LATE_ROWS_ACTIVITY,
        PRODUCT_LIVE_RESOURCES_ACTIVITY,
        PRODUCT_PURGE_ACTIVITY,
        product_task_queue,
    )
    from workflows.policies import CHECK_TIMEOUT, DATABASE_RETRY, PURGE_TIMEOUT, SHORT, purge_retry


async def live_resources_on_product_worker(
    ref: AccountRef, product: str, policy: DeletionPolicy
) -> list[PendingTask]:
    """The product's live resources, as its own worker finds them. A worker that does not take
    the check within `product_check_wait` (it is down) does not hold the deletion here: its
    purge checks again before removing anything, and refuses while resources are live."""
    try:
        found: list[PendingTask] = await workflow.execute_activity(
            PRODUCT_LIVE_RESOURCES_ACTIVITY,
            LiveResourcesInput(
                account_id=ref.account_id, workflow_id=ref.workflow_id, product=product
            ),
            task_queue=product_task_queue(product),
            result_type=list[PendingTask],
            schedule_to_start_timeout=policy.product_check_wait,
            start_to_close_timeout=CHECK_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary=f"live resources of {product}",
        )
        return found
    except ActivityError as error:
        cause = error.cause
        if isinstance(cause, TimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START:
            workflow.logger.warning(
                "%s: no worker took the live-resource check; its purge checks again", product
            )
            return []
        raise


async def purge_on_product_worker(
    request: PurgeProductInput, policy: DeletionPolicy
) -> ProductReceipt:
    """The product's purge by its own worker: batched, heartbeating, resumed from its heartbeat
    after a crash. No schedule-to-start limit: the run waits in PURGING for the worker."""
    receipt: ProductReceipt = await workflow.execute_activity(
        PRODUCT_PURGE_ACTIVITY,
        request,
        task_queue=product_task_queue(request.product),
        result_type=ProductReceipt,
        start_to_close_timeout=PURGE_TIMEOUT,
        heartbeat_timeout=policy.purge_heartbeat_timeout,
        retry_policy=purge_retry(policy.purge_attempts, PURGE_REFUSED, UNKNOWN_PRODUCT),
        summary=f"purge {request.product} (its worker)",
    )
    return receipt


async def late_rows_on_product_worker(
    request: PurgeProductInput, policy: DeletionPolicy
) -> ProductReceipt:
    """Just before identifiers are released: the product's worker purges again what was
    written since its purge and answers the receipt counting it. Retried while it refuses
    (a live resource came back): identifiers stay held."""
    receipt: ProductReceipt = await workflow.execute_activity(
        PRODUCT_LATE_ROWS_ACTIVITY,
        request,
        task_queue=product_task_queue(request.product),
        result_type=ProductReceipt,
        start_to_close_timeout=PURGE_TIMEOUT,
        heartbeat_timeout=policy.purge_heartbeat_timeout,
        retry_policy=DATABASE_RETRY,
        summary=f"late rows of {request.product} (its worker)",
    )
    return receipt


async def record_purge(request: PurgeProductInput, receipt: ProductReceipt) -> ProductReceipt:
    """Records a product that finished outside this database, before the run counts it done."""
    recorded: ProductReceipt = await workflow.execute_activity_method(
        PurgeActivities.record_product_purge,
        RecordPurgeInput(
            account_id=request.account_id, workflow_id=request.workflow_id, receipt=receipt
        ),
        start_to_close_timeout=SHORT,
        retry_policy=DATABASE_RETRY,
    )
    return recorded


async def purge_over_http(request: PurgeProductInput, policy: DeletionPolicy) -> ProductReceipt:
    """An `http` product's purge: the signed request, completed by the product's callback
    within `http_callback_wait` (transient faults retried inside it); then polls of its API
    every `http_poll_interval`, each a retry of one activity, so the history holds two
    activities whatever the wait. A product that reports failure, or refuses the request, is
    a failed purge (a pending task until an operator retries)."""
    permanent = [PRODUCT_PURGE_FAILED, PRODUCT_API_REFUSED, UNKNOWN_PRODUCT]
    try:
        receipt: ProductReceipt = await workflow.execute_activity_method(
            HttpProductActivities.request_http_purge,
            request,
            schedule_to_close_timeout=policy.http_callback_wait,
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(seconds=30), non_retryable_error_types=permanent
            ),
            summary=f"purge {request.product} (its API)",
        )
        return receipt
    except ActivityError as error:
        if not isinstance(error.cause, TimeoutError):
            raise
    polled: ProductReceipt = await workflow.execute_activity_method(
        HttpProductActivities.poll_http_purge,
        request,
        start_to_close_timeout=CHECK_TIMEOUT,
        schedule_to_close_timeout=PURGE_TIMEOUT,
        retry_policy=RetryPolicy(
            initial_interval=policy.http_poll_interval,
            backoff_coefficient=1.0,
            non_retryable_error_types=permanent,
        ),
        summary=f"poll {request.product} (its API)",
    )
    return polled
