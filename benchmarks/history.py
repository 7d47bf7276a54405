"""History size: events per deletion as a function of the products holding data and of rows,
against the bare workflow of the same shape (it runs one purge activity per registry product,
as the saga does).

Rows must not show in the history: a purge heartbeats its progress instead of recording it,
so a million-row account costs the events of a ten-row one. What can vary is the number of
workflow tasks, when parallel purges finish at different moments.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from benchmarks.harness import (
    Relay,
    Report,
    bare_history,
    bare_workflow_id,
    saga_handle,
    saga_worker,
    signalling,
)
from benchmarks.seed import seed_account
from benchmarks.stack import Stack
from contract.names import workflow_id_for
from contract.stages import Stage
from starter.client import DeletionClient

TARGET_RATIO = 1.2
LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""A local activity's marker; a patch's (`core_patch`) is not one."""
EVENTS_PER_WORKFLOW_TASK = 3
"""Scheduled, started, completed: what one more workflow task adds to a history."""


@dataclass(frozen=True)
class Size:
    points: tuple[tuple[int, int], ...]
    """(products holding data, rows per product), the first is the ratio's reference."""


SIZES = {
    "tiny": Size(points=((6, 5), (1, 5))),
    "full": Size(
        points=((6, 10), (1, 10), (3, 10), (6, 1_000), (6, 20_000), (6, 100_000), (6, 200_000))
    ),
}


@dataclass(frozen=True)
class Shape:
    events: int
    activities: int
    local_activities: int
    workflow_tasks: int
    signals: int

    @property
    def other_events(self) -> int:
        """Every event that is not part of a completed workflow task."""
        return self.events - EVENTS_PER_WORKFLOW_TASK * self.workflow_tasks

    @property
    def wakeups(self) -> int:
        """Events that wake the workflow: the most workflow tasks it can take."""
        return 1 + self.activities + self.signals

    @classmethod
    def of(cls, history: WorkflowHistory) -> Shape:
        kinds = Counter(event.event_type for event in history.events)
        return cls(
            events=len(history.events),
            activities=kinds[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED],
            local_activities=sum(
                1
                for event in history.events
                if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
            ),
            workflow_tasks=kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED],
            signals=kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED],
        )


async def run(stack: Stack, size: Size) -> Report:
    report = Report(
        "history",
        columns=[
            "workflow",
            "products w/ data",
            "rows/product",
            "events",
            "activities",
            "local act.",
            "wf tasks",
            "signals",
        ],
        target=f"ratio <= {TARGET_RATIO}, flat in rows (only workflow tasks vary, at most one"
        " per waking event)",
    )

    relay_saga = signalling(stack, workflow_id_for)
    relay_bare = signalling(stack, bare_workflow_id)

    bare = await _bare_shape(stack, relay_bare)
    report.rows.append(["bare", "-", "-", *_columns(bare)])
    saga: dict[tuple[int, int], Shape] = {}
    deletions = DeletionClient(stack.client, stack.pool, stack.settings.temporal_task_queue)
    async with saga_worker(stack, relay_saga):
        for products, rows in size.points:
            account = await seed_account(stack.pool, rows_per_product=rows, products=products)
            await deletions.start(account.account_id, requested_by="benchmark")
            handle = saga_handle(stack, account.account_id)
            if (await handle.result()).outcome is not Stage.DELETED:
                raise RuntimeError(f"deletion of {account.account_id} did not finish")
            saga[(products, rows)] = Shape.of(await handle.fetch_history())
            report.rows.append(["saga", products, rows, *_columns(saga[(products, rows)])])
    reference_products = size.points[0][0]
    reference = saga[size.points[0]]
    by_rows = sorted(
        (rows, shape) for (products, rows), shape in saga.items() if products == reference_products
    )
    flat = flat_in_rows([shape for _, shape in by_rows])
    growth = by_rows[-1][1].events / by_rows[0][1].events - 1
    report.ratio = reference.events / bare.events
    report.met = report.ratio <= TARGET_RATIO and flat
    report.figures = {
        "saga_events": reference.events,
        "bare_events": bare.events,
        "saga_activities": reference.activities,
        "bare_activities": bare.activities,
        "events_by_rows": {str(rows): shape.events for rows, shape in by_rows},
        "workflow_tasks_by_rows": {str(rows): shape.workflow_tasks for rows, shape in by_rows},
        "other_events_by_rows": {str(rows): shape.other_events for rows, shape in by_rows},
        "most_workflow_tasks": reference.wakeups,
        "growth_smallest_to_largest_rows": round(growth, 3),
        "flat_in_rows": flat,
    }
    if not flat:
        report.notes.append(
            "not flat in rows: beyond workflow tasks (at most one per event that wakes the"
            " workflow) the history changed with the rows"
        )
    same_shape = (reference.activities, reference.local_activities, reference.signals) == (
        bare.activities,
        bare.local_activities,
        bare.signals,
    )
    report.figures["same_shape_as_bare"] = same_shape
    if not same_shape:
        report.notes.append("the bare workflow no longer has the saga's shape: update bare.py")
        report.met = False
    return report


def flat_in_rows(shapes: list[Shape]) -> bool:
    """Whether rows leave no mark on the history.

    Everything but workflow tasks must be equal at every row count: activities, local
    activities, signals, and every other event. Workflow tasks are timing: events that wake the
    workflow together (parallel purges finishing at once) share one, events apart take one
    each; more rows make the purges finish apart. They are bounded all the same: at most one
    per waking event (the start, each activity's completion, each signal), whatever the rows.
    A purge that recorded its batches in the history, or retried, would break the first rule.
    """
    smallest = shapes[0]
    for shape in shapes:
        same_commands = (shape.activities, shape.local_activities, shape.signals) == (
            smallest.activities,
            smallest.local_activities,
            smallest.signals,
        )
        if not same_commands or shape.other_events != smallest.other_events:
            return False
        if shape.workflow_tasks > shape.wakeups:
            return False
    return True


def _columns(shape: Shape) -> list[int]:
    return [
        shape.events,
        shape.activities,
        shape.local_activities,
        shape.workflow_tasks,
        shape.signals,
    ]


async def _bare_shape(stack: Stack, relay: Relay) -> Shape:
    return Shape.of(await bare_history(stack, relay, "history"))
