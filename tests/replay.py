"""Replays histories straight from a Temporal server against the current workflow code.

`replay_every_history` lists every AccountDeletion run on the server (running, closed,
terminated, or left half-way by a killed worker: partial histories replay too), fetches each
history and replays it with the product's workflow and the client's data converter. Any
non-determinism or decoding failure fails with a message naming the runs and the errors.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from contract.names import WORKFLOW_TYPE
from core.codec import KEY_ID_METADATA, EncryptionCodec
from workflows.account_deletion import AccountDeletion

ACCOUNT_DELETIONS = f"WorkflowType='{WORKFLOW_TYPE}'"


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    """`workflow_id/run_id` of every history replayed without a failure."""
    failures: dict[str, str] = field(default_factory=dict)
    """`workflow_id/run_id` → the replay failure."""
    foreign_keys: dict[str, set[str]] = field(default_factory=dict)
    """`workflow_id/run_id` → key ids of payloads the client's converter does not hold."""


async def replay_every_history(
    client: Client,
    query: str = ACCOUNT_DELETIONS,
    *,
    skip_foreign_keys: bool = False,
) -> int:
    """Replays every workflow the query lists; returns how many replayed, fails on any failure.

    With `skip_foreign_keys`, histories whose payloads were encrypted with keys the client's
    converter does not hold (a test that rotated to keys of its own) are left out instead of
    failing: nobody here can decode them. Every other history must replay."""
    report = await replay_histories(client, query, skip_foreign_keys=skip_foreign_keys)
    return assert_replayed(report)


def assert_replayed(report: ReplayReport) -> int:
    """Fails naming every run that did not replay; returns how many did."""
    total = len(report.replayed) + len(report.failures)
    assert not report.failures, (
        f"{len(report.failures)} of {total} histories failed to replay:\n"
        + ("\n".join(f"- {run}: {error}" for run, error in sorted(report.failures.items())))
    )
    return len(report.replayed)


async def replay_histories(
    client: Client, query: str = ACCOUNT_DELETIONS, *, skip_foreign_keys: bool = False
) -> ReplayReport:
    """What `replay_every_history` does, without asserting: the replayed, failed, skipped."""
    replayer = Replayer(workflows=[AccountDeletion], data_converter=client.data_converter)
    known = _key_ids(client)
    report = ReplayReport()

    async def histories() -> AsyncIterator[WorkflowHistory]:
        async for execution in client.list_workflows(query):
            run = f"{execution.id}/{execution.run_id}"
            if execution.workflow_type != WORKFLOW_TYPE:
                report.failures[run] = f"listed by {query!r} but of type {execution.workflow_type}"
                continue
            try:
                history = await client.get_workflow_handle(
                    execution.id, run_id=execution.run_id
                ).fetch_history()
            except Exception as error:  # any failure to fetch is reported with the run
                report.failures[run] = f"history not fetched: {type(error).__name__}: {error}"
                continue
            if skip_foreign_keys and known is not None:
                if foreign := _encryption_key_ids(history) - known:
                    report.foreign_keys[run] = foreign
                    continue
            yield history

    # One replay worker for all histories, one history after the other.
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            run = f"{result.history.workflow_id}/{result.history.run_id}"
            if result.replay_failure is None:
                report.replayed.append(run)
            else:
                failure = result.replay_failure
                report.failures[run] = f"{type(failure).__name__}: {failure}"
    return report


def _key_ids(client: Client) -> set[str] | None:
    """The key ids the client's converter decrypts with (None: it encrypts nothing)."""
    codec = client.data_converter.payload_codec
    return set(codec.key_ids) if isinstance(codec, EncryptionCodec) else None


def _encryption_key_ids(history: WorkflowHistory) -> set[str]:
    """Ids of the keys that encrypted any payload of the history (from each payload's
    `encryption-key-id` metadata)."""
    return {
        base64.b64decode(key_id).decode()
        for key_id in _metadata_values(history.to_json_dict(), KEY_ID_METADATA)
    }


def _metadata_values(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        metadata = node.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get(key), str):
            yield metadata[key]
        for value in node.values():
            yield from _metadata_values(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _metadata_values(value, key)
