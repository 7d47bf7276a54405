"""Deletions already running must keep working after a change of the workflow's code.

Replays the histories checked into tests/histories (recorded from the saga tests' paths with
RECORD_HISTORIES=1) against the current workflow: a non-deterministic change fails here.
Changes that alter the command sequence go behind `workflow.patched`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from starter.client import DeletionClient
from starter.codec import data_converter_for_keys
from tests.conftest import TEST_PAYLOAD_KEYS
from tests.replay import ACCOUNT_DELETIONS, assert_replayed, replay_histories
from tests.support import Inbox, new_account, running_worker, start_and_receive_code
from workflows.account_deletion import AccountDeletion
from workflows.models import Stage

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
            f"\nreplayed {replayed} AccountDeletion histories of this session"
            f" ({len(report.foreign_keys)} left out: encrypted with keys of their own test)\n"
        )
    assert replayed > 0


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
