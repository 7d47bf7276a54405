"""What the customer may see of a deletion: the status with a purge failure's reason, and a
manual purge's internal instructions, replaced.

A purge that cannot finish carries the product's words (`ProductProgress.failure` and its
pending task's message), and for a legal hold those name the hold, its case and who placed it:
preservation orders are often confidential. The workflow, its `status` query, the Temporal UI
and the CLI keep the reason for operators; the customer-facing edges (the verification page and
`GET /v1/accounts/{id}/deletion`, whose answer the console shows to the user) show this instead.
"""

from __future__ import annotations

from contract.models import DeletionStatus, PendingTask, ProductProgress, TaskCategory

PURGE_HELD = "A product cannot delete your data yet; our team is handling it."
PURGE_HELD_RESOLUTION = "Nothing to do on your side: the deletion goes on once it is resolved."
PURGE_BY_HAND = "Part of your data is removed by hand by our team; this can take a few days."
PURGE_BY_HAND_RESOLUTION = "Nothing to do on your side: the deletion goes on once it is done."


def customer_view(status: DeletionStatus) -> DeletionStatus:
    """A copy of `status` without any purge failure's reason."""
    return status.model_copy(
        update={
            "pending_tasks": [_task(task) for task in status.pending_tasks],
            "products": [_product(progress) for progress in status.products],
        }
    )


def _task(task: PendingTask) -> PendingTask:
    """Operators' words replaced: a failure's reason, and a manual purge's internal
    instructions (where the tapes are, whom to call) with what the user may expect."""
    if task.category is TaskCategory.PURGE_FAILURE:
        return task.model_copy(update={"message": PURGE_HELD, "resolution": PURGE_HELD_RESOLUTION})
    if task.category is TaskCategory.MANUAL_PURGE:
        return task.model_copy(
            update={"message": PURGE_BY_HAND, "resolution": PURGE_BY_HAND_RESOLUTION}
        )
    return task


def _product(progress: ProductProgress) -> ProductProgress:
    if progress.failure is None:
        return progress
    return progress.model_copy(update={"failure": PURGE_HELD})
