"""Stage-change events for the console backend: every stage change of a deletion reaches a real
HTTP receiver at least once, in order per deletion, signed the Standard Webhooks way, without
PII, also when the receiver was down for a while or lost its answers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.account import AccountActivities
from activities.purge import PurgeActivities
from contract.models import PendingTask, ProgressRecord
from contract.names import workflow_id_for
from contract.stages import Stage
from core.config import ConfigurationError, Settings
from registry.catalog import Catalog
from starter.client import DeletionClient
from store.event_relay import EventRelay, backoff
from tests.support import (
    Stack,
    new_account,
    running_gateway,
    start_and_receive_code,
    start_and_receive_code_by_webhook,
    webhook_worker_env,
    worker_process,
)
from tests.support.receiver import Receiver, running_receiver
from worker import events_secret

CLEAN_PATH = [
    Stage.CHECKING_PREREQUISITES,
    Stage.AWAITING_VERIFICATION,
    Stage.FREEZING,
    Stage.PURGING,
    Stage.RELEASING_IDENTIFIERS,
    Stage.DELETED,
]


@asynccontextmanager
async def relaying(pool: asyncpg.Pool, receiver: Receiver) -> AsyncIterator[EventRelay]:
    """The worker's relay, in this process, polling often and backing off at most 0.5 s."""
    relay = EventRelay(pool, receiver.url, receiver.secret, poll_interval=0.05, max_backoff=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await task
        await relay.aclose()


async def delete(stack: Stack, account_id: str) -> None:
    code = await start_and_receive_code(stack.deletions, stack.inbox, account_id)
    await stack.deletions.verify(account_id, code)
    await (await stack.deletions.handle(account_id)).result()


def has_deleted(*account_ids: str) -> Any:
    def done(receiver: Receiver) -> bool:
        return all(
            any(e["stage"] == "DELETED" for e in receiver.events_of(workflow_id_for(a)))
            for a in account_ids
        )

    return done


def assert_one_ordered_chain(events: list[dict[str, Any]]) -> None:
    """Each event follows the one before it: no gap, no repeat, no reordering."""
    assert [e["stage"] for e in events] == [s.value for s in CLEAN_PATH]
    assert [e["previous_stage"] for e in events] == [None] + [s.value for s in CLEAN_PATH[:-1]]
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)


async def test_every_stage_change_arrives_once_in_order_signed_and_without_pii(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    account_id = await new_account(pool)
    private = await pool.fetchrow(
        "select user_name, email, phone from accounts where account_id = $1", account_id
    )
    assert private is not None
    with running_receiver() as receiver:
        async with stack.worker(), relaying(pool, receiver):
            code = await start_and_receive_code(stack.deletions, stack.inbox, account_id)
            await stack.deletions.verify(account_id, code)
            await (await stack.deletions.handle(account_id)).result()
            await receiver.wait_for(has_deleted(account_id))
    events = receiver.events_of(workflow_id_for(account_id))
    assert_one_ordered_chain(events)
    assert {e["type"] for e in events} == {"deletion.stage_changed"}
    assert all(
        e["account_id"] == account_id and isinstance(e["pending_tasks"], int) for e in events
    )
    assert set(events[0]) == {
        "type", "account_id", "workflow_id", "stage", "previous_stage", "pending_tasks", "at",
        "sequence",
    }  # fmt: skip
    assert receiver.rejected == 0
    assert len(receiver.requests) == len(events), "answered events are not sent again"
    for headers, body in receiver.requests:
        assert headers["webhook-signature"].startswith("v1,")
        text = body.decode()
        for secret in (private["user_name"], private["email"], private["phone"], code):
            assert secret not in text
    logged = await pool.fetch(
        "select stage, delivered_at from deletion_events where workflow_id = $1 order by seq",
        workflow_id_for(account_id),
    )
    assert [row["stage"] for row in logged] == [s.value for s in CLEAN_PATH]
    assert all(row["delivered_at"] is not None for row in logged)


async def test_a_receiver_down_then_up_gets_everything_in_order_once_deduplicated(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    accounts = [await new_account(pool) for _ in range(2)]
    with running_receiver() as receiver:
        receiver.down()
        async with stack.worker(), relaying(pool, receiver):
            await asyncio.gather(*(delete(stack, account_id) for account_id in accounts))
            async with asyncio.timeout(30):
                while not await pool.fetchval(
                    "select bool_and(attempts > 0) from deletion_events where seq in"
                    " (select min(seq) from deletion_events group by workflow_id)"
                ):
                    await asyncio.sleep(0.1)
            held = await pool.fetchval(
                "select count(*) from deletion_events where delivered_at is null"
            )
            assert held == 2 * len(CLEAN_PATH), "nothing is lost or dropped while it is down"
            receiver.lose_answers = 3  # received, but the sender never hears so: sent again
            receiver.up()
            await receiver.wait_for(has_deleted(*accounts))
    assert receiver.rejected == 0
    ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert len(ids) > len(set(ids)), "the lost answers made the relay send again"
    bodies: dict[str, bytes] = {}
    for headers, body in receiver.requests:
        assert bodies.setdefault(headers["webhook-id"], body) == body, "a retry is the same event"
    for account_id in accounts:
        assert_one_ordered_chain(receiver.events_of(workflow_id_for(account_id)))
        # Arrival order, duplicates included: a retry of event n may come again, but event
        # n+1 only after n was acknowledged.
        arrived = [
            body
            for headers, body in receiver.requests
            if workflow_id_for(account_id).encode() in body
        ]
        stages = [Stage(s) for s in (_stage_of(body) for body in arrived)]
        positions = [CLEAN_PATH.index(stage) for stage in stages]
        assert positions == sorted(positions)


def _stage_of(body: bytes) -> str:
    import json

    stage: str = json.loads(body)["stage"]
    return stage


async def test_only_a_change_of_stage_is_an_event_and_a_retried_record_adds_none(
    pool: asyncpg.Pool,
) -> None:
    account_id = await new_account(pool)
    catalog = Catalog()
    activities = AccountActivities(pool, PurgeActivities(pool, catalog), catalog)
    env = ActivityEnvironment()

    def record(stage: Stage, tasks: int = 0, run_id: str = "run-1") -> ProgressRecord:
        return ProgressRecord(
            account_id=account_id,
            workflow_id=workflow_id_for(account_id),
            run_id=run_id,
            requested_by="test",
            stage=stage,
            pending_tasks=[
                PendingTask.model_validate(
                    {"category": "arrears", "item": f"bill-{n}", "message": "m", "resolution": "r"}
                )
                for n in range(tasks)
            ],
            products=[],
            closed=stage.is_final,
        )

    await env.run(activities.record_progress, record(Stage.CHECKING_PREREQUISITES))
    await env.run(activities.record_progress, record(Stage.AWAITING_TASKS, tasks=2))
    await env.run(activities.record_progress, record(Stage.AWAITING_TASKS, tasks=2))  # a retry
    await env.run(activities.record_progress, record(Stage.AWAITING_TASKS, tasks=1))  # show
    # The next run of the same deletion (continue-as-new) resumes where it was: no change.
    await env.run(activities.record_progress, record(Stage.AWAITING_TASKS, 1, run_id="run-2"))
    await env.run(activities.record_progress, record(Stage.CANCELLED, run_id="run-2"))
    # A new deletion of the same account after the closed one starts a new chain.
    await env.run(activities.record_progress, record(Stage.CHECKING_PREREQUISITES, run_id="r3"))
    rows = await pool.fetch(
        "select stage, previous_stage, pending_tasks from deletion_events"
        " where workflow_id = $1 order by seq",
        workflow_id_for(account_id),
    )
    assert [tuple(row) for row in rows] == [
        ("CHECKING_PREREQUISITES", None, 0),
        ("AWAITING_TASKS", "CHECKING_PREREQUISITES", 2),
        ("CANCELLED", "AWAITING_TASKS", 0),
        ("CHECKING_PREREQUISITES", None, 0),
    ]


def test_backoff_doubles_up_to_its_cap() -> None:
    assert 0.8 <= backoff(1, 300) <= 1
    assert 6.4 <= backoff(4, 300) <= 8
    assert 240 <= backoff(40, 300) <= 300


def test_events_need_a_valid_secret() -> None:
    assert events_secret(Settings()) is None
    with pytest.raises(ConfigurationError, match="EVENTS_WEBHOOK_SECRET"):
        events_secret(Settings(events_webhook_url="http://console.internal/events"))
    with pytest.raises(ConfigurationError, match="EVENTS_WEBHOOK_SECRET must be whsec_"):
        events_secret(
            Settings(events_webhook_url="http://x/events", events_webhook_secret="whsec_short")
        )


@pytest.mark.slow
async def test_the_worker_process_relays_the_events_it_records(
    client: Client, pool: asyncpg.Pool, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """As deployed: `python worker.py` with EVENTS_WEBHOOK_URL runs the relay beside the worker,
    and stops it with the worker on SIGTERM."""
    account_id = await new_account(pool)
    deletions = DeletionClient(client, pool, task_queue)
    with running_gateway() as gateway, running_receiver() as receiver:
        env = webhook_worker_env(
            client,
            task_queue,
            database_url,
            gateway,
            batch_size=500,
            shutdown_seconds=1,
            EVENTS_WEBHOOK_URL=receiver.url,
            EVENTS_WEBHOOK_SECRET=receiver.secret,
        )
        log = tmp_path / "worker.log"
        with worker_process(env, log) as worker:
            code = await start_and_receive_code_by_webhook(
                deletions, gateway, account_id, requested_by="events-test"
            )
            await deletions.submit_code(account_id, code)
            await receiver.wait_for(has_deleted(account_id))
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.wait, 30) == 0, log.read_text()[-3000:]
    assert_one_ordered_chain(receiver.events_of(workflow_id_for(account_id)))
