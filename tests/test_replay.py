"""Deletions already running must keep working after a change of the workflow's code.

Replays the histories checked into tests/histories (recorded from the saga tests' paths with
RECORD_HISTORIES=1) against the current workflow: a non-deterministic change fails here.
Changes that alter the command sequence go behind `workflow.patched`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from contract.stages import Stage
from core.codec import data_converter_for_keys
from starter.client import DeletionClient
from tests.conftest import TEST_PAYLOAD_KEYS
from tests.replay import ACCOUNT_DELETIONS, assert_replayed, replay_histories
from tests.support import (
    REPO_ROOT,
    Inbox,
    new_account,
    running_worker,
    start_and_receive_code,
    wait_for_stage,
)
from workflows.account_deletion import AccountDeletion

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def test_histories_are_checked_in() -> None:
    names = {path.stem for path in HISTORIES}
    assert {
        "clean_deletion",
        "blocked_then_resolved",
        "wrong_codes_then_resend",
        "cancel_after_freeze",
        "late_resource_caught",
        "legal_hold_retried",
        "temporal_cancel_refused_after_purge",
        "verified_by_update",
        "manual_product_confirmed",
        "worker_product_waited_for",
        "http_product_by_callback",
        "http_product_by_polling",
        "http_product_failed_then_retried",
        "cooling_off_then_purged",
        "cooling_off_new_tasks_then_purged",
        "cooling_off_restored",
        "cooling_off_continued_as_new",
        "clean_deletion_current_sequence",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_recorded_history_replays_on_the_current_workflow(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    # The product's converter: histories recorded before payloads were encrypted replay
    # through it too (the codec passes unencrypted payloads through).
    replayer = Replayer(
        workflows=[AccountDeletion], data_converter=data_converter_for_keys(TEST_PAYLOAD_KEYS)
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.stem}: {result.replay_failure}"


@pytest.mark.run_last
async def test_every_history_this_session_produced_replays_on_the_current_workflow(
    client: Client, pool: asyncpg.Pool, task_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every AccountDeletion run the test session left on its Temporal server (deleted,
    cancelled, expired, blocked, terminated, or cut short by a killed worker) replays.

    Runs last (conftest moves it to the end). Alone, the session has produced nothing to
    replay, so it first carries out one real deletion itself: it never passes on zero."""
    if await _account_deletions(client) == 0:
        await _delete_one_account(client, pool, task_queue)
    report = await replay_histories(client, skip_foreign_keys=True)
    replayed = assert_replayed(report)
    with capsys.disabled():
        sys.stdout.write(
            f"\nreplayed {replayed} AccountDeletion histories of this session; left out:"
            f" {len(report.foreign_keys)} encrypted with keys of their own test\n"
        )
    assert replayed > 0


async def test_the_history_of_a_run_waiting_past_the_point_of_no_return_replays(
    client: Client, pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    """The history of a run blocked on a purge (a legal hold), as it stands while the run
    waits for a retry, replays (as a worker replays it after a restart). Replayed in a process
    of its own, so that a replay that never ends is stopped. (The run itself goes on to
    DELETED first, so that this process's worker never holds it.) The workflow refuses a
    cancellation past that point; the cancellation of an eviction must still go through."""
    inbox = Inbox()
    account_id = await new_account(pool)
    await pool.execute(
        "insert into legal_holds (account_id, product, reason, placed_at)"
        " values ($1, 'object_storage', 'litigation hold', now())",
        account_id,
    )
    deletions = DeletionClient(client, pool, task_queue)
    async with running_worker(client, pool, task_queue, inbox):
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        handle = await deletions.handle(account_id)
        assert (await handle.result()).outcome is Stage.DELETED
    full = await handle.fetch_history()
    retry = next(
        index
        for index, event in enumerate(full.events)
        if event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == "request_retry"
    )
    history = WorkflowHistory(full.workflow_id, full.events[:retry])
    assert any(
        event.activity_task_scheduled_event_attributes.activity_type.name == "purge_product"
        for event in history.events
    ), "the cut history must reach the point of no return"
    saved = tmp_path / "history.json"
    saved.write_text(history.to_json())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _REPLAY_ONE,
        str(saved),
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the replay did not end within 20 s") from None
    assert process.returncode == 0 and b"replayed" in out, out.decode()[-2000:]


_REPLAY_ONE = """
import asyncio, sys
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from core.codec import data_converter_for_keys
from tests.conftest import TEST_PAYLOAD_KEYS
from workflows.account_deletion import AccountDeletion

async def main() -> None:
    history = WorkflowHistory.from_json("replay", open(sys.argv[1]).read())
    replayer = Replayer(
        workflows=[AccountDeletion], data_converter=data_converter_for_keys(TEST_PAYLOAD_KEYS)
    )
    await replayer.replay_workflow(history)
    sys.stdout.write("replayed\\n")

asyncio.run(main())
"""


async def _account_deletions(client: Client) -> int:
    return (await client.count_workflows(ACCOUNT_DELETIONS)).count


async def _delete_one_account(client: Client, pool: asyncpg.Pool, task_queue: str) -> None:
    inbox = Inbox()
    account_id = await new_account(pool)
    deletions = DeletionClient(client, pool, task_queue)
    async with running_worker(client, pool, task_queue, inbox):
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        receipt = await (await deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED
    # Visibility is eventually consistent: wait until the list shows the run.
    async with asyncio.timeout(10):
        while await _account_deletions(client) == 0:
            await asyncio.sleep(0.1)
