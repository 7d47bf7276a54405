"""Deletions already running must keep working after a change of the workflow's code.

Replays the histories checked into tests/histories (recorded from the saga tests' paths with
RECORD_HISTORIES=1) against the current workflow: a non-deterministic change fails here.
Changes that alter the command sequence go behind `workflow.patched`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

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
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_recorded_history_replays_on_the_current_workflow(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[AccountDeletion], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.stem}: {result.replay_failure}"
