"""Work per deletion, counted rather than timed: what one clean deletion asks of Temporal and of
PostgreSQL, beside the bare workflow of the same shape, so that a change's effect shows without
the noise of a timing.

Temporal: the history's events by kind (timers included), its workflow tasks, and its
visibility writes (the start, each search-attribute upsert, the close). Heartbeats write to the
server's persistence without showing in a history; a purge sends none in its first second
(`kit.engine.HEARTBEAT_AFTER`), so this account's purges send none. PostgreSQL: the statements
the worker sends (a transaction's BEGIN and COMMIT count), by the activity that sent them,
through a query logger on a pool of its own. The counts are exact; the same deletion counts the
same but for workflow tasks (timing: purges finishing together share one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from asyncpg.connection import LoggedQuery
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from benchmarks.harness import (
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
from store.db import create_pool


@dataclass(frozen=True)
class Size:
    rows_per_product: int


SIZES = {"tiny": Size(rows_per_product=5), "full": Size(rows_per_product=100)}

EXTRA_VISIBILITY_WRITES = 6
"""What the saga may write to visibility beyond the bare workflow: one upsert per stage after
the first (AWAITING_VERIFICATION, FREEZING, PURGING, RELEASING_IDENTIFIERS, DELETED) and the
one of its patch marker. The start sets `AccountId` and the first stage."""

_VISIBILITY = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
}


@dataclass(frozen=True)
class Work:
    events: Counter[str]
    statements: Counter[str]

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    @property
    def visibility_writes(self) -> int:
        return sum(self.events[EventType.Name(kind)] for kind in _VISIBILITY)

    @classmethod
    def of(cls, history: WorkflowHistory, statements: Counter[str]) -> Work:
        events = Counter(EventType.Name(event.event_type) for event in history.events)
        return cls(events=events, statements=statements)


class StatementCounter:
    """Counts each statement under the activity that sent it (`other` outside activities)."""

    def __init__(self) -> None:
        self.by_activity: Counter[str] = Counter()

    def __call__(self, query: LoggedQuery) -> None:
        try:
            name = activity.info().activity_type
        except RuntimeError:
            name = "other"
        self.by_activity[name] += 1


async def run(stack: Stack, size: Size) -> Report:
    report = Report(
        "work",
        columns=["per deletion", "saga", "bare", "saga - bare"],
        target=f"at most {EXTRA_VISIBILITY_WRITES} visibility writes more than bare",
    )
    saga = await _saga_work(stack, size)
    bare = await _bare_work(stack)
    rows: list[tuple[str, int, int]] = [
        ("history events", saga.total_events, bare.total_events),
        ("visibility writes", saga.visibility_writes, bare.visibility_writes),
    ]
    for kind in sorted(set(saga.events) | set(bare.events)):
        rows.append(("  " + kind.removeprefix("EVENT_TYPE_"), saga.events[kind], bare.events[kind]))
    rows.append(("SQL statements", sum(saga.statements.values()), 0))
    for name, count in saga.statements.most_common():
        rows.append(("  " + name, count, 0))
    report.rows = [[label, s, b, s - b] for label, s, b in rows]
    report.met = saga.visibility_writes - bare.visibility_writes <= EXTRA_VISIBILITY_WRITES
    report.figures = {
        "saga_events": saga.total_events,
        "bare_events": bare.total_events,
        "saga_visibility_writes": saga.visibility_writes,
        "bare_visibility_writes": bare.visibility_writes,
        "saga_workflow_tasks": saga.events["EVENT_TYPE_WORKFLOW_TASK_COMPLETED"],
        "bare_workflow_tasks": bare.events["EVENT_TYPE_WORKFLOW_TASK_COMPLETED"],
        "saga_sql_statements": sum(saga.statements.values()),
        "sql_statements_by_activity": dict(saga.statements.most_common()),
    }
    report.notes.append(
        "one clean deletion each; workflow tasks are timing (events that wake the workflow"
        " together share one)"
    )
    return report


async def _saga_work(stack: Stack, size: Size) -> Work:
    counter = StatementCounter()
    assert stack.settings.database_url is not None
    pool = await create_pool(stack.settings.database_url, query_logger=counter)
    try:
        counted = replace(stack, pool=pool)
        account = await seed_account(stack.pool, rows_per_product=size.rows_per_product)
        deletions = DeletionClient(stack.client, stack.pool, stack.settings.temporal_task_queue)
        async with saga_worker(counted, signalling(stack, workflow_id_for)):
            await deletions.start(account.account_id, requested_by="benchmark")
            handle = saga_handle(stack, account.account_id)
            if (await handle.result()).outcome is not Stage.DELETED:
                raise RuntimeError(f"deletion of {account.account_id} did not finish")
    finally:
        await pool.close()
    return Work.of(await handle.fetch_history(), counter.by_activity)


async def _bare_work(stack: Stack) -> Work:
    relay = signalling(stack, bare_workflow_id)
    return Work.of(await bare_history(stack, relay, "work"), Counter())
