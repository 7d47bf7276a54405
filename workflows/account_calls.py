"""The account's activities as the saga calls them, each with its timeout and retry policy.

Deterministic (no I/O): each function schedules one activity of `AccountActivities`,
`PrerequisiteActivities` or `NotificationActivities`, so that the workflow's steps read as
the flow (`await freeze(ref)`) and every call of one activity has the same options.
"""

from __future__ import annotations

import asyncio
import dataclasses

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.account import AccountActivities
    from activities.notify import NotificationActivities
    from activities.prerequisites import PrerequisiteActivities
    from contract.errors import UNKNOWN_NOTIFICATION
    from contract.models import (
        AccountRef,
        DeletionPolicy,
        DeletionReceipt,
        DeliverNotificationInput,
        FinalizeInput,
        PrerequisiteReport,
        ProgressRecord,
    )
    from workflows.failures import error_message
    from workflows.policies import (
        CHECK_TIMEOUT,
        CONFIRMATION_DEADLINE,
        CONFIRMATION_DELIVERY,
        DATABASE_RETRY,
        SHORT,
    )
    from workflows.product_calls import live_resources_on_product_worker


async def check_prerequisites(ref: AccountRef, policy: DeletionPolicy) -> PrerequisiteReport:
    """This database's prerequisites and `http` products' live resources, then those of each
    `worker` product, found by its own worker, all in the report's pending tasks."""
    report = await workflow.execute_activity_method(
        PrerequisiteActivities.check_prerequisites,
        ref,
        start_to_close_timeout=CHECK_TIMEOUT,
        retry_policy=DATABASE_RETRY,
    )
    found = await asyncio.gather(
        *(live_resources_on_product_worker(ref, p, policy) for p in report.worker_products)
    )
    report.pending_tasks += [task for tasks in found for task in tasks]
    return report


async def freeze(ref: AccountRef) -> None:
    await workflow.execute_activity_method(
        AccountActivities.freeze_account,
        ref,
        start_to_close_timeout=SHORT,
        retry_policy=DATABASE_RETRY,
    )


async def freeze_to_its_end(ref: AccountRef) -> None:
    """The freeze, which a cancellation of the run does not cut short: the run waits for the
    freeze to commit (or fail) before the cancellation goes on to its compensation, so that
    the unfreeze cannot commit first and leave the account frozen."""
    freezing = asyncio.ensure_future(freeze(ref))
    try:
        await asyncio.shield(freezing)
    except asyncio.CancelledError:
        await workflow.wait([freezing])
        raise


async def unfreeze(ref: AccountRef) -> None:
    await workflow.execute_activity_method(
        AccountActivities.unfreeze_account,
        ref,
        start_to_close_timeout=SHORT,
        retry_policy=DATABASE_RETRY,
    )


async def release_identifiers(ref: AccountRef) -> None:
    """Refused (PURGES_UNFINISHED) while any product of the registry has no finished purge."""
    await workflow.execute_activity_method(
        AccountActivities.release_identifiers,
        ref,
        start_to_close_timeout=SHORT,
        retry_policy=DATABASE_RETRY,
    )


async def finalize(request: FinalizeInput) -> DeletionReceipt:
    return await workflow.execute_activity_method(
        AccountActivities.finalize_deletion,
        request,
        start_to_close_timeout=SHORT,
        retry_policy=DATABASE_RETRY,
    )


async def record_progress(record: ProgressRecord) -> None:
    """A local activity: the deletion's row follows every stage without a round of history."""
    await workflow.execute_local_activity_method(
        AccountActivities.record_progress,
        record,
        start_to_close_timeout=SHORT,
        retry_policy=DATABASE_RETRY,
    )


async def send_confirmation() -> None:
    """Retried for a day; the account is deleted either way (the message stays in the outbox)."""
    await deliver_from_outbox(f"deleted-{workflow.info().workflow_id}", "confirmation")


async def deliver_from_outbox(idempotency_key: str, what: str) -> None:
    """Delivers a message the outbox holds, retried for a day; one still undelivered then is
    logged and left (expired) in the outbox: the run goes on either way."""
    try:
        await workflow.execute_activity_method(
            NotificationActivities.deliver_notification,
            DeliverNotificationInput(idempotency_key=idempotency_key),
            start_to_close_timeout=SHORT,
            schedule_to_close_timeout=CONFIRMATION_DEADLINE,
            retry_policy=dataclasses.replace(
                CONFIRMATION_DELIVERY, non_retryable_error_types=[UNKNOWN_NOTIFICATION]
            ),
        )
    except ActivityError as error:
        workflow.logger.warning("%s not delivered: %s", what, error_message(error))
