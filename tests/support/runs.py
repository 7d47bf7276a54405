"""Driving a deletion run from a test: start it and get the code, wait for a stage, record its
history for the replay tests."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

from contract.models import DeletionPolicy, DeletionStatus
from contract.names import workflow_id_for
from contract.stages import Stage
from starter.client import DeletionClient
from tests.support.gateway import Gateway
from tests.support.inbox import Inbox

TAKEOVER_POLICY = DeletionPolicy(purge_heartbeat_timeout=timedelta(seconds=3))
"""For tests that kill or stop workers: a purge whose worker died is retried after 3 s, not 30."""

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


async def start_and_receive_code(
    deletions: DeletionClient,
    inbox: Inbox,
    account_id: str,
    policy: DeletionPolicy | None = None,
) -> str:
    """Starts a deletion of an account with nothing pending; returns the code the user got."""
    await deletions.start(account_id, policy=policy)
    code = await inbox.next_code(account_id)
    await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
    return code


async def confirm_after_one_wrong_code(
    deletions: DeletionClient, inbox: Inbox, account_id: str
) -> str:
    """Starts a deletion, submits one wrong code and then the right one (through the update);
    returns the right code."""
    code = await start_and_receive_code(deletions, inbox, account_id)
    await deletions.verify(account_id, "000000" if code != "000000" else "111111")
    await deletions.verify(account_id, code)
    return code


async def start_and_receive_code_by_webhook(
    deletions: DeletionClient, gateway: Gateway, account_id: str, *, requested_by: str
) -> str:
    """Starts a deletion served by a worker process, with the `TAKEOVER_POLICY`; returns the
    one code the gateway received for it (within a minute: the process may still be starting).
    """
    await deletions.start(account_id, requested_by=requested_by, policy=TAKEOVER_POLICY)
    code = await gateway.only_code_for(account_id, timeout=60)
    await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
    return code


async def wait_for_stage(
    deletions: DeletionClient, account_id: str, stage: Stage, *, timeout: float = 30
) -> DeletionStatus:
    async with asyncio.timeout(timeout):
        while True:
            status = await deletions.status(account_id)
            if status.stage is stage:
                return status
            if status.stage.is_final:
                raise AssertionError(f"run ended in {status.stage} while waiting for {stage}")
            await asyncio.sleep(0.1)


async def record_history(client: Client, account_id: str, name: str) -> None:
    """With RECORD_HISTORIES=1, checks the run's history into tests/histories for replay tests.

    Recorded from real runs of the paths the saga tests take, so that a workflow change that
    would break deletions already running fails `test_replay.py`.
    """
    if os.environ.get("RECORD_HISTORIES") != "1":
        return
    handle = client.get_workflow_handle(workflow_id_for(account_id))
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())
