"""Deletions already running must keep working after a change of the workflow's code.

Replays the histories checked into tests/histories (recorded from the saga tests' paths with
RECORD_HISTORIES=1) against the current workflow: a non-deterministic change fails here.
Changes that alter the command sequence go behind `workflow.patched`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from starter.codec import data_converter_for_keys
from tests.conftest import TEST_PAYLOAD_KEYS
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
