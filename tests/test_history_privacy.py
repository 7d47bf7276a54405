"""No code, email or phone in clear in the workflow history that the Temporal server keeps.

Runs complete deletions on the real dev server, exports their histories as an operator would
(`temporal workflow show --output json`) and searches them, payload data included. The same
searches over the export decoded through the codec (in the test, and through the API's codec
server with the CLI's `--codec-endpoint`) find the code: the check can fail.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import uvicorn
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.converter import PayloadCodec
from temporalio.worker import Replayer

from contract.models import DeletionReceipt, VerificationOutcome
from contract.names import workflow_id_for
from contract.stages import Stage
from core.codec import PayloadKey, UnknownKeyError, data_converter_for_keys
from core.config import Settings
from service.api import create_app
from service.embedded import installed_binary
from starter.client import DeletionClient
from tests.support import (
    Inbox,
    new_account,
    running_worker,
    start_and_receive_code,
    wait_for_stage,
)
from workflows.account_deletion import AccountDeletion

TOKEN = "history-privacy-token-0123456789"


# --- exporting and searching ------------------------------------------------------------------


async def export_history(client: Client, workflow_id: str, *options: str) -> str:
    """`temporal workflow show --output json`, as an operator runs it against the server."""
    process = await asyncio.create_subprocess_exec(
        str(installed_binary("temporal")),
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--address",
        client.service_client.config.target_host,
        "--namespace",
        client.namespace,
        "--output",
        "json",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode(errors="replace")
    return out.decode()


def _payloads(node: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """Every payload ({"metadata": ..., "data": ...}) anywhere in an exported history."""
    for _, payload in _payloads_at(node, path):
        yield payload


def _payloads_at(
    node: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path of keys, payload) for every payload in an exported history."""
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
            yield path, node
        for key, value in node.items():
            yield from _payloads_at(value, (*path, key))
    elif isinstance(node, list):
        for item in node:
            yield from _payloads_at(item, path)


def _never_encoded(path: tuple[str, ...]) -> bool:
    """Payloads that no codec sees: search attributes (the server indexes them), the
    bookkeeping of the SDK's local activity markers (sequence number, type, times: the
    marker's `data`; its `result` is encoded) and `workflow.patched` markers (the patch id)."""
    marker = "markerRecordedEventAttributes"
    return "searchAttributes" in path or (
        marker in path
        and path[path.index(marker) + 1 : path.index(marker) + 3]
        in {("details", "data"), ("details", "patch-data")}
    )


def _unbase64(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def readable(exported: str) -> str:
    """The export as anyone holding it can read it: the JSON text, and every payload's
    metadata and data decoded from the base64 that the export shows them in."""
    pieces = [exported]
    for payload in _payloads(json.loads(exported)):
        pieces += [_unbase64(value) for value in payload["metadata"].values()]
        pieces.append(_unbase64(payload["data"]))
    return "\n".join(pieces)


def shows_code(text: str, code: str) -> bool:
    """The code as a number of its own (not a run of digits inside a timestamp or an id)."""
    return re.search(rf"(?<![0-9]){re.escape(code)}(?![0-9])", text) is not None


def shows_identifier(text: str, identifier: str) -> bool:
    digits = identifier.lstrip("+")
    return identifier.lower() in text.lower() or (digits.isdigit() and digits in text)


async def decode_export(exported: str, codec: PayloadCodec) -> str:
    """The export with every payload decoded by `codec`, as the codec server would."""

    async def visit(node: Any) -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
                [decoded] = await codec.decode([json_format.ParseDict(node, Payload())])
                return json_format.MessageToDict(decoded)
            return {key: await visit(value) for key, value in node.items()}
        if isinstance(node, list):
            return [await visit(item) for item in node]
        return node

    return json.dumps(await visit(json.loads(exported)))


def events_of(exported: str, attributes: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(exported)["events"]
    return [event[attributes] for event in events if attributes in event]


async def identifiers_of(pool: asyncpg.Pool, account_id: str) -> tuple[str, str, str]:
    row = await pool.fetchrow(
        "select user_name, email, phone from accounts where account_id = $1", account_id
    )
    assert row is not None and row["email"] and row["phone"]
    return row["user_name"], row["email"], row["phone"]


def with_keys(client: Client, keys: list[PayloadKey]) -> Client:
    """Another client on the same connection whose converter holds only `keys`."""
    config = client.config()
    config["data_converter"] = data_converter_for_keys(keys)
    return Client(**config)


def _another_code(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


# --- the API's codec server on a real socket, for the CLI -------------------------------------


class _Server(uvicorn.Server):
    """uvicorn in the test's own event loop, leaving the test runner's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_api(client: Client, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[str]:
    """The API (and so its codec server) on a free loopback port; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    settings = Settings(api_token=TOKEN, temporal_task_queue=task_queue, api_port=port)
    app = create_app(settings, pool=pool, client=client)
    server = _Server(uvicorn.Config(app, log_config=None, log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not serving.done(), "the API stopped while starting"
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
        listener.close()


# --- the tests --------------------------------------------------------------------------------


async def test_a_complete_deletion_leaves_no_code_email_or_phone_in_the_exported_history(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    inbox = Inbox()
    deletions = DeletionClient(client, pool, task_queue)
    account_id = await new_account(pool)
    user_name, email, phone = await identifiers_of(pool, account_id)
    async with running_worker(client, pool, task_queue, inbox):
        code = await start_and_receive_code(deletions, inbox, account_id)
        wrong = _another_code(code)
        assert (await deletions.verify(account_id, wrong)).outcome is VerificationOutcome.WRONG
        await deletions.submit_code(account_id, code)  # a signal
        receipt = await (await deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED

    workflow_id = workflow_id_for(account_id)
    exported = await export_history(client, workflow_id)
    text = readable(exported)
    assert '"workflowExecutionCompletedEventAttributes"' in exported, "not a complete history"
    for secret in (code, wrong):
        assert not shows_code(text, secret), "a verification code is in the history in clear"
    assert not shows_identifier(text, email), "the email address is in the history in clear"
    assert not shows_identifier(text, phone), "the phone number is in the history in clear"
    assert user_name not in text, "the user name is in the history in clear"
    payloads = [
        payload for path, payload in _payloads_at(json.loads(exported)) if not _never_encoded(path)
    ]
    plain = [p for p in payloads if _unbase64(p["metadata"]["encoding"]) != "binary/encrypted"]
    assert payloads and not plain, f"payloads reached the server unencrypted: {plain}"

    # The same search finds the code once the payloads are decoded: the check above can fail.
    codec = client.data_converter.payload_codec
    assert codec is not None
    decoded = await decode_export(exported, codec)
    [signal] = [
        signal
        for signal in events_of(decoded, "workflowExecutionSignaledEventAttributes")
        if signal["signalName"] == "submit_verification_code"
    ]
    assert shows_code(readable(json.dumps(signal)), code)
    [update] = events_of(decoded, "workflowExecutionUpdateAcceptedEventAttributes")
    assert shows_code(readable(json.dumps(update)), wrong)

    # And so does the operator's CLI through the API's codec server, with the API token.
    async with serving_api(client, pool, task_queue) as base_url:
        through_codec = await export_history(
            client,
            workflow_id,
            "--codec-endpoint",
            f"{base_url}/codec",
            "--codec-auth",
            f"Bearer {TOKEN}",
        )
    assert shows_code(readable(through_codec), code)


async def test_a_purge_failure_message_is_encoded_in_the_history(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    inbox = Inbox()
    deletions = DeletionClient(client, pool, task_queue)
    account_id = await new_account(pool)
    reason = f"Litigation hold {uuid.uuid4().hex[:12]} placed by Legal"
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'object_storage', $2)",
        account_id,
        reason,
    )
    async with running_worker(client, pool, task_queue, inbox):
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        status = await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        assert any(reason in task.message for task in status.pending_tasks)

        exported = await export_history(client, workflow_id_for(account_id))
        failures = [
            attributes["failure"]
            for attributes in events_of(exported, "activityTaskFailedEventAttributes")
        ]
        assert failures, "the blocked purge left no failed activity in the history"
        assert reason not in readable(exported), "the failure message is in the history in clear"
        for failure in failures:
            assert failure["message"] == "Encoded failure"
            assert not failure.get("stackTrace")
            assert "encodedAttributes" in failure
        codec = client.data_converter.payload_codec
        assert codec is not None
        assert reason in readable(await decode_export(exported, codec))

        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        receipt = await (await deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED


async def test_histories_written_with_a_retired_key_still_decode_and_replay(
    client: Client, pool: asyncpg.Pool, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = PayloadKey.generate("old"), PayloadKey.generate("new")
    before = with_keys(client, [old])
    after = with_keys(client, [new, old])  # rotated: `new` encrypts, `old` still decrypts

    inbox = Inbox()
    account_id = await new_account(pool)
    deletions = DeletionClient(before, pool, task_queue)
    async with running_worker(before, pool, task_queue, inbox):
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        await (await deletions.handle(account_id)).result()

    handle: WorkflowHandle[AccountDeletion, DeletionReceipt] = after.get_workflow_handle_for(
        AccountDeletion.run, workflow_id_for(account_id)
    )
    history = await handle.fetch_history()
    key_ids = {
        _unbase64(payload["metadata"].get("encryption-key-id", ""))
        for path, payload in _payloads_at(history.to_json_dict())
        if not _never_encoded(path)
    }
    assert key_ids == {"old"}

    # After the rotation: the old run's result still reads, and its history replays.
    receipt = await handle.result()
    assert receipt.outcome is Stage.DELETED
    rotated = Replayer(workflows=[AccountDeletion], data_converter=after.data_converter)
    result = await rotated.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure

    # Without the retired key it cannot: the codec's UnknownKeyError fails the replay (its
    # message, naming the key id, is logged; the failure itself is encoded).
    forgotten = Replayer(workflows=[AccountDeletion], data_converter=data_converter_for_keys([new]))
    copy = WorkflowHistory.from_json(history.workflow_id, history.to_json())
    with caplog.at_level(logging.ERROR):
        failed = await forgotten.replay_workflow(copy, raise_on_replay_failure=False)
    assert failed.replay_failure is not None
    assert UnknownKeyError.__name__ in str(failed.replay_failure)
    assert "key id 'old', which PAYLOAD_KEYS does not list" in caplog.text
    assert old.entry().split(":", 1)[1] not in caplog.text
