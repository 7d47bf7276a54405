"""Bad input, over every way in: the HTTP API, the workflow's signals and update straight
through Temporal, and the operator CLI. Each row of the table is one kind of bad input; for
each the answer is a clear error that names the problem without echoing a secret, and nothing
changes: every table of the database, every run's id, stage and `status`, and every run's
history (a signal that does not fit the stage is recorded as a signal event, and nothing else).

The accounts and runs the rows aim at are prepared once for the module, in every stage a row
needs: a run awaiting the code, one awaiting pending tasks, one blocked on a purge (past the
point of no return), a finished deletion, an account without a deletion.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contract.models import CodeCheck, DeletionPolicy
from contract.names import workflow_id_for
from contract.stages import Stage
from core.config import Settings
from service.api import create_app
from service.embedded import installed_binary
from starter.client import DeletionClient
from store.db import create_pool
from tests.support import (
    Inbox,
    attach_every_prerequisite,
    new_account,
    new_database,
    running_worker,
    start_and_receive_code,
    table_snapshot,
    wait_for_stage,
)

pytestmark = pytest.mark.faults

TOKEN = "bad-input-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNKNOWN = "acct-doesnotexist"
SQL = "'; drop table accounts; --"
TRAVERSAL = "../../etc/passwd"
LONG = "a" * 10_000
CONTROL = "acct-\u202e\u0007\u001b[2J"
NUL = "acct-\x00x"

# --- the prepared world -------------------------------------------------------------------------


@dataclass
class World:
    """What every row may aim at. `ids` maps a role to its account id; `code` is the secret
    code the `verifying` run awaits, `old_code` the one the `deleted` run accepted."""

    pool: asyncpg.Pool
    client: Client
    api: httpx.AsyncClient
    cli_env: dict[str, str]
    ids: dict[str, str]
    code: str
    old_code: str

    def fill(self, text: str) -> str:
        return text.format(**self.ids, code=self.code, old_code=self.old_code, unknown=UNKNOWN)

    def handle(self, role: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(workflow_id_for(self.ids[role]))


RUNS = ("verifying", "tasks", "blocked", "deleted")
"""Roles with a deletion run: AWAITING_VERIFICATION, AWAITING_TASKS, PURGE_BLOCKED, DELETED.
`victim` (AWAITING_VERIFICATION too) is for a row that, answered badly, would wedge its run:
it is watched only by that row."""

NO_EARLY_RESEND = DeletionPolicy(resend_interval=timedelta(hours=1))
"""A resend is always too soon: a row that gets one through would send a new code."""


@pytest.fixture(scope="module")
async def module_database(postgres_admin_dsn: str, database_template: str) -> AsyncIterator[str]:
    """One database for the module's rows (the per-test `database_url` is per function)."""
    name = f"test_bad_input_{uuid.uuid4().hex[:12]}"
    async with new_database(postgres_admin_dsn, name, template=database_template) as url:
        yield url


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process, its lifespan run, answering as a server would: an exception
    in the app is a 500 answer here (`in_process_api` raises it into the test instead)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield http


@pytest.fixture(scope="module")
async def world(
    temporal_env: WorkflowEnvironment,
    module_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    client = temporal_env.client
    task_queue = f"test-bad-input-{uuid.uuid4()}"
    pool = await create_pool(module_database, max_size=10)
    inbox = Inbox()
    deletions = DeletionClient(client, pool, task_queue)
    try:
        async with running_worker(client, pool, task_queue, inbox):
            ids = {role: await new_account(pool) for role in (*RUNS, "victim", "idle")}
            await attach_every_prerequisite(pool, ids["tasks"])
            await pool.execute(
                "insert into legal_holds (account_id, product, reason, placed_at)"
                " values ($1, 'object_storage', 'litigation hold', now())",
                ids["blocked"],
            )

            async def verifying() -> str:
                return await start_and_receive_code(
                    deletions, inbox, ids["verifying"], policy=NO_EARLY_RESEND
                )

            async def victim() -> None:
                await start_and_receive_code(deletions, inbox, ids["victim"])

            async def tasks() -> None:
                await deletions.start(ids["tasks"])
                await wait_for_stage(deletions, ids["tasks"], Stage.AWAITING_TASKS)

            async def blocked() -> None:
                code = await start_and_receive_code(deletions, inbox, ids["blocked"])
                await deletions.submit_code(ids["blocked"], code)
                await wait_for_stage(deletions, ids["blocked"], Stage.PURGE_BLOCKED)

            async def deleted() -> str:
                code = await start_and_receive_code(deletions, inbox, ids["deleted"])
                await deletions.submit_code(ids["deleted"], code)
                receipt = await (await deletions.handle(ids["deleted"])).result()
                assert receipt.outcome is Stage.DELETED
                return code

            code, _, _, old_code, _ = await asyncio.gather(
                verifying(), tasks(), blocked(), deleted(), victim()
            )
            settings = Settings(api_token=TOKEN, temporal_task_queue=task_queue)
            async with served(create_app(settings, pool=pool, client=client)) as api:
                cli_env = {
                    key: value
                    for key, value in os.environ.items()
                    if key not in ("API_TOKEN", "NOTIFIER", "NOTIFY_WEBHOOK_URL", "DATA_DIR")
                }
                cli_env.update(
                    TEMPORAL_ADDRESS=client.service_client.config.target_host,
                    TEMPORAL_NAMESPACE=client.namespace,
                    TEMPORAL_TASK_QUEUE=task_queue,
                    DATABASE_URL=module_database,
                    DATA_DIR=str(tmp_path_factory.mktemp("bad-input-cli")),
                )
                yield World(pool, client, api, cli_env, ids, code, old_code)
            # The blocked run goes on to DELETED: the session leaves no deletion half-done.
            await pool.execute(
                "update legal_holds set lifted_at = now() where account_id = $1", ids["blocked"]
            )
            await deletions.retry(ids["blocked"])
            await (await deletions.handle(ids["blocked"])).result()
            for role in ("verifying", "tasks", "victim"):
                handle = client.get_workflow_handle(workflow_id_for(ids[role]))
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("bad-input table over")
    finally:
        await pool.close()


# --- what "nothing changed" means --------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    run_id: str
    execution: WorkflowExecutionStatus | None
    status: dict[str, Any] | None
    """The `status` query of an open run (a closed run's status is its row, in the tables)."""
    events: tuple[str, ...]
    """The history's event types."""


@dataclass(frozen=True)
class State:
    tables: dict[str, str]
    runs: dict[str, RunState]


async def settled(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription:
    """Waits until the run has no workflow task or activity pending: what was sent to it has
    been handled (a signal schedules a workflow task in the same write that records it)."""
    async with asyncio.timeout(20):
        while True:
            description = await handle.describe()
            raw = description.raw_description
            if not raw.HasField("pending_workflow_task") and not raw.pending_activities:
                return description
            await asyncio.sleep(0.05)


async def run_state(handle: WorkflowHandle[Any, Any]) -> RunState:
    description = await settled(handle)
    open_ = description.status == WorkflowExecutionStatus.RUNNING
    status = (await handle.query("status")) if open_ else None
    history = await handle.fetch_history()
    return RunState(
        run_id=description.run_id,
        execution=description.status,
        status=json.loads(json.dumps(status, default=str)) if status is not None else None,
        events=tuple(event.WhichOneof("attributes") or "" for event in history.events),
    )


async def state(world: World, *also: str) -> State:
    roles = (*RUNS, *also)
    runs = await asyncio.gather(*(run_state(world.handle(role)) for role in roles))
    return State(tables=await table_snapshot(world.pool), runs=dict(zip(roles, runs, strict=True)))


SIGNAL_ONLY = {
    "workflow_execution_signaled_event_attributes",
    "workflow_task_scheduled_event_attributes",
    "workflow_task_started_event_attributes",
    "workflow_task_completed_event_attributes",
}
"""What a signal that changes nothing adds to a history: itself, and the task that read it."""


def assert_unchanged(name: str, before: State, after: State, signalled: str | None) -> None:
    changed = [t for t in before.tables if before.tables[t] != after.tables.get(t)]
    assert not changed and before.tables.keys() == after.tables.keys(), (
        f"[{name}] tables changed: {changed}"
    )
    for role, was in before.runs.items():
        now = after.runs[role]
        assert now.run_id == was.run_id, f"[{name}] {role}: another run {now.run_id}"
        assert now.execution == was.execution, f"[{name}] {role}: {was.execution}→{now.execution}"
        assert now.status == was.status, (
            f"[{name}] {role}: status changed:\n{was.status}\n{now.status}"
        )
        assert now.events[: len(was.events)] == was.events, f"[{name}] {role}: history rewritten"
        added = now.events[len(was.events) :]
        if role == signalled:
            assert added.count("workflow_execution_signaled_event_attributes") == 1, (
                f"[{name}] {role}: the signal is not in the history: {added}"
            )
            assert set(added) <= SIGNAL_ONLY, f"[{name}] {role}: the signal did more: {added}"
        else:
            assert not added, f"[{name}] {role}: history grew by {added}"


# --- the table ---------------------------------------------------------------------------------

Body = Callable[[World], object]


@dataclass(frozen=True)
class Http:
    method: str
    path: str
    """With `{role}` placeholders (`{verifying}`, `{unknown}`, ...)."""
    json: Body | None = None
    content: Callable[[World], bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: AUTH)
    chunked: bool = False
    """Send the content as a stream, without a Content-Length."""


@dataclass(frozen=True)
class Signal:
    role: str
    name: str
    arg: Body | None = None


@dataclass(frozen=True)
class Update:
    role: str
    name: str
    arg: Body


@dataclass(frozen=True)
class Cli:
    args: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    name: str
    send: Http | Signal | Update | Cli
    expect: int | str
    """HTTP status; CLI exit code; for Temporal the failure's type (`CodeNotAwaited`,
    `RPCError`), or "ignored" for a signal the run takes and does nothing with."""
    error: str | None
    """The problem's `error` code (HTTP); None where the answer is not a problem."""
    message: str
    """A fragment of the message that explains the problem."""
    secret: Callable[[World], str] | None = None
    """A value sent that no answer may echo (the world's codes are never echoed anyway)."""
    watch: tuple[str, ...] = ()
    """Runs outside RUNS whose state this row must not change either."""


def code(world: World) -> str:
    return world.code


def old_code(world: World) -> str:
    return world.old_code


def verify(role: str, body: Body, name: str, status: int, message: str, **kw: Any) -> Row:
    send = Http("POST", "/v1/accounts/{" + role + "}/deletion/verification", json=body)
    error = {404: "account_not_found", 409: "action_not_allowed", 422: "invalid_request"}
    return Row(name, send, status, error.get(status), message, **kw)


def invalid_code(name: str, value: object, message: str) -> Row:
    """A code the API refuses before it reaches the run (which would count an attempt)."""
    return verify(
        "verifying",
        lambda w: {"code": value},
        name,
        422,
        message,
        secret=(lambda w: value) if isinstance(value, str) and len(value) >= 4 else None,
    )


PATTERN = "String should match pattern"


def account_path(account_id: str) -> str:
    """The deletion route of an account id, every character of it percent-encoded as a
    client would send it (`/` too: a traversal reaches the server as one path segment)."""
    return f"/v1/accounts/{quote(account_id, safe='')}/deletion"


ROWS: list[Row] = [
    # -- who and which account
    Row(
        "status of an unknown account",
        Http("GET", "/v1/accounts/{unknown}/deletion"),
        404,
        "account_not_found",
        f"no account {UNKNOWN}",
    ),
    Row(
        "start for an unknown account",
        Http("POST", "/v1/accounts/{unknown}/deletion"),
        404,
        "account_not_found",
        f"no account {UNKNOWN}",
    ),
    verify(
        "unknown",
        lambda w: {"code": "123456"},
        "code for an unknown account",
        404,
        f"no account {UNKNOWN}",
    ),
    Row(
        "status of an account without a deletion",
        Http("GET", "/v1/accounts/{idle}/deletion"),
        404,
        "deletion_not_found",
        "no deletion was requested",
    ),
    Row(
        "cancel without a deletion",
        Http("POST", "/v1/accounts/{idle}/deletion/cancel"),
        404,
        "deletion_not_found",
        "no deletion was requested",
    ),
    Row(
        "receipt before the deletion finished",
        Http("GET", "/v1/accounts/{verifying}/deletion/receipt"),
        404,
        "deletion_not_found",
        "no finished deletion",
    ),
    # -- a deletion that already finished
    Row(
        "start again after the deletion finished",
        Http("POST", "/v1/accounts/{deleted}/deletion"),
        409,
        "account_deleted",
        "is already deleted",
    ),
    verify(
        "deleted",
        lambda w: {"code": w.old_code},
        "verify again after the deletion finished",
        409,
        "cannot submit a code in stage DELETED",
        secret=old_code,
    ),
    Row(
        "cancel after the deletion finished",
        Http("POST", "/v1/accounts/{deleted}/deletion/cancel"),
        409,
        "action_not_allowed",
        "cannot be cancelled in stage DELETED",
    ),
    # -- a second start while one runs returns that run, starting nothing
    Row(
        "duplicate start while one is running",
        Http("POST", "/v1/accounts/{verifying}/deletion"),
        202,
        None,
        '"started":false',
    ),
    # -- bodies
    Row(
        "malformed JSON body",
        Http(
            "POST",
            "/v1/accounts/{verifying}/deletion/verification",
            content=lambda w: b'{"code": "' + w.code.encode() + b'", ',
        ),
        422,
        "invalid_request",
        "JSON decode error",
        secret=code,
    ),
    Row(
        "body over 16 KiB",
        Http(
            "POST",
            "/v1/accounts/{verifying}/deletion/verification",
            content=lambda w: json.dumps({"code": w.code, "pad": " " * 20_000}).encode(),
        ),
        413,
        "body_too_large",
        "limited to 16384 bytes",
        secret=code,
    ),
    Row(
        "body over 16 KiB without a Content-Length (chunked)",
        Http(
            "POST",
            "/v1/accounts/{verifying}/deletion/verification",
            chunked=True,
            content=lambda w: json.dumps({"code": w.code, "pad": " " * 20_000}).encode(),
        ),
        413,
        "body_too_large",
        "limited to 16384 bytes",
        secret=code,
    ),
    invalid_code("code as a number", 123456, "body.code: Input should be a valid string"),
    invalid_code("code as a list", ["123456"], "body.code: Input should be a valid string"),
    invalid_code("code null", None, "body.code: Input should be a valid string"),
    verify("verifying", lambda w: {}, "code missing", 422, "body.code: Field required"),
    verify(
        "verifying",
        lambda w: [w.code],
        "body a list, not an object",
        422,
        "Input should be a valid dictionary",
        secret=code,
    ),
    verify(
        "verifying",
        lambda w: {"code": w.code, "trusted": True},
        "extra field",
        422,
        "body.trusted: Extra inputs are not permitted",
        secret=code,
    ),
    invalid_code("code too short", "123", PATTERN),
    Row(
        "code of 5 digits (no policy issues fewer than 6)",
        Http(
            "POST",
            "/v1/accounts/{verifying}/deletion/verification",
            json=lambda w: {"code": w.code[:5]},
        ),
        422,
        "invalid_request",
        "body.code",
        secret=lambda w: w.code[:5],
    ),
    invalid_code("code too long", "12345678901", PATTERN),
    invalid_code("code with letters", "12ab56", PATTERN),
    invalid_code("code in other digits", "١٢٣٤٥٦", PATTERN),
    invalid_code("code with a NUL byte", "123456\x00", PATTERN),
    invalid_code("code SQL-shaped", "1' or '1'='1", PATTERN),
    Row(
        "requested_by SQL-shaped",
        Http("POST", "/v1/accounts/{idle}/deletion", json=lambda w: {"requested_by": SQL}),
        422,
        "invalid_request",
        "body.requested_by: " + PATTERN,
        secret=lambda w: SQL,
    ),
    Row(
        "requested_by very long",
        Http("POST", "/v1/accounts/{idle}/deletion", json=lambda w: {"requested_by": LONG}),
        422,
        "invalid_request",
        "body.requested_by: String should have at most 200 characters",
        secret=lambda w: LONG,
    ),
    Row(
        "requested_by with control characters and a NUL",
        Http(
            "POST",
            "/v1/accounts/{idle}/deletion",
            json=lambda w: {"requested_by": "ops\u202e\x00jane"},
        ),
        422,
        "invalid_request",
        "body.requested_by: " + PATTERN,
    ),
    Row(
        "requested_by a number",
        Http("POST", "/v1/accounts/{idle}/deletion", json=lambda w: {"requested_by": 7}),
        422,
        "invalid_request",
        "body.requested_by: Input should be a valid string",
    ),
    Row(
        "cancel reason with a NUL byte",
        Http(
            "POST",
            "/v1/accounts/{victim}/deletion/cancel",
            json=lambda w: {"reason": "changed my mind\x00"},
        ),
        422,
        "invalid_request",
        "body.reason",
        watch=("victim",),
    ),
    Row(
        "display name with a NUL byte (registration)",
        Http(
            "POST",
            "/v1/accounts",
            json=lambda w: {
                "user_name": "mallory",
                "email": "mallory@example.com",
                "phone": "+14155550198",
                "display_name": "Mallory\x00",
            },
        ),
        422,
        "invalid_request",
        "body.display_name",
    ),
    Row(
        "user name SQL-shaped (registration)",
        Http(
            "POST",
            "/v1/accounts",
            json=lambda w: {"user_name": SQL, "email": "m@example.com", "phone": "+14155550197"},
        ),
        422,
        "invalid_request",
        "body.user_name",
        secret=lambda w: SQL,
    ),
    Row(
        "cancel reason over 500 characters",
        Http(
            "POST", "/v1/accounts/{verifying}/deletion/cancel", json=lambda w: {"reason": "x" * 501}
        ),
        422,
        "invalid_request",
        "body.reason: String should have at most 500 characters",
    ),
    # -- account ids shaped like attacks (the path pattern refuses them)
    Row(
        "account id SQL-shaped",
        Http("POST", account_path(SQL)),
        422,
        "invalid_request",
        "path.account_id: " + PATTERN,
    ),
    Row(
        "account id a path traversal",
        Http("GET", account_path(TRAVERSAL)),
        404,  # its `%2F`s are decoded: the path has more segments than any route
        "not_found",
        "not found",
    ),
    Row(
        "account id 10,000 characters",
        Http("GET", account_path(LONG)),
        422,
        "invalid_request",
        "path.account_id: " + PATTERN,
    ),
    Row(
        "account id with control characters",
        Http("GET", account_path(CONTROL)),
        422,
        "invalid_request",
        "path.account_id: " + PATTERN,
    ),
    Row(
        "account id with a NUL byte",
        Http("GET", account_path(NUL)),
        422,
        "invalid_request",
        "path.account_id: " + PATTERN,
    ),
    # -- actions that do not fit the stage
    verify(
        "tasks",
        lambda w: {"code": w.code},
        "code while pending tasks are awaited",
        409,
        "cannot submit a code in stage AWAITING_TASKS",
        secret=code,
    ),
    verify(
        "blocked",
        lambda w: {"code": w.code},
        "code after the code was accepted",
        409,
        "cannot submit a code in stage PURGE_BLOCKED",
        secret=code,
    ),
    Row(
        "retry when nothing failed",
        Http("POST", "/v1/accounts/{verifying}/deletion/retry"),
        409,
        "action_not_allowed",
        "cannot retry the failed purges in stage AWAITING_VERIFICATION",
    ),
    Row(
        "recheck when no tasks are pending",
        Http("POST", "/v1/accounts/{verifying}/deletion/recheck"),
        409,
        "action_not_allowed",
        "cannot check the pending tasks again in stage AWAITING_VERIFICATION",
    ),
    Row(
        "cancel after the point of no return",
        Http("POST", "/v1/accounts/{blocked}/deletion/cancel"),
        409,
        "action_not_allowed",
        "purging has begun and cannot be undone",
    ),
    Row(
        "resend while no code is awaited",
        Http("POST", "/v1/accounts/{blocked}/deletion/resend-code"),
        409,
        "action_not_allowed",
        "cannot resend the code in stage PURGE_BLOCKED",
    ),
    Row(
        "resend before the interval passed",
        Http("POST", "/v1/accounts/{verifying}/deletion/resend-code"),
        429,
        "rate_limited",
        "a new code can be sent in",
    ),
    # -- the token, the method, the route
    Row(
        "no bearer token",
        Http("GET", "/v1/accounts/{verifying}/deletion", headers={}),
        401,
        "unauthorized",
        "a valid bearer token is required",
    ),
    Row(
        "wrong bearer token",
        Http(
            "POST",
            "/v1/accounts/{verifying}/deletion/verification",
            json=lambda w: {"code": w.code},
            headers={"Authorization": "Bearer " + TOKEN[:-1]},
        ),
        401,
        "unauthorized",
        "a valid bearer token is required",
        secret=code,
    ),
    Row(
        "token in another scheme",
        Http(
            "GET", "/v1/accounts/{verifying}/deletion", headers={"Authorization": "Basic " + TOKEN}
        ),
        401,
        "unauthorized",
        "a valid bearer token is required",
    ),
    Row(
        "wrong HTTP method",
        Http("DELETE", "/v1/accounts/{verifying}/deletion"),
        405,
        "method_not_allowed",
        "method not allowed",
    ),
    Row(
        "unknown route",
        Http("POST", "/v1/accounts/{verifying}/deletion/undo"),
        404,
        "not_found",
        "not found",
    ),
    # -- straight through Temporal: signals the run takes and ignores, updates it refuses
    Row(
        "signal: code while pending tasks are awaited",
        Signal("tasks", "submit_verification_code", lambda w: {"code": w.code}),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: code after the code was accepted",
        Signal("blocked", "submit_verification_code", lambda w: {"code": w.code}),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: code not a code (dropped undecoded, no attempt counted)",
        Signal("verifying", "submit_verification_code", lambda w: {"code": "12ab56"}),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: code with an extra field",
        Signal(
            "verifying", "submit_verification_code", lambda w: {"code": w.code, "trusted": True}
        ),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: retry when nothing failed",
        Signal("verifying", "retry_failed_purges"),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: recheck while awaiting the code",
        Signal("verifying", "recheck_prerequisites"),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: cancel after the point of no return",
        Signal("blocked", "cancel"),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: resend while no code is awaited",
        Signal("blocked", "resend_verification_code"),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: resend before the interval passed",
        Signal("verifying", "resend_verification_code"),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: a name the workflow does not know",
        Signal("verifying", "delete_everything_now"),
        "ignored",
        None,
        "",
    ),
    Row(
        "signal: to a deletion that finished",
        Signal("deleted", "submit_verification_code", lambda w: {"code": w.old_code}),
        "RPCError",
        None,
        "workflow execution already completed",
    ),
    Row(
        "update: code while pending tasks are awaited",
        Update("tasks", "verify_code", lambda w: {"code": w.code}),
        "CodeNotAwaited",
        None,
        "no verification code is awaited",
        secret=code,
    ),
    Row(
        "update: code after the code was accepted",
        Update("blocked", "verify_code", lambda w: {"code": w.code}),
        "CodeNotAwaited",
        None,
        "no verification code is awaited",
        secret=code,
    ),
    Row(
        "update: code not a code",
        Update("verifying", "verify_code", lambda w: {"code": "12ab56"}),
        "ApplicationError",
        None,
        "",
        secret=lambda w: "12ab56",
    ),
    Row(
        "update: a name the workflow does not know",
        Update("verifying", "delete_everything_now", lambda w: {}),
        "ApplicationError",
        None,
        "delete_everything_now",
    ),
    # -- the operator CLI
    Row(
        "cli: status of an unknown account",
        Cli(("status", "{unknown}")),
        3,
        None,
        f"no account {UNKNOWN}",
    ),
    Row(
        "cli: start again after the deletion finished",
        Cli(("start", "{deleted}")),
        1,
        None,
        "is already deleted",
    ),
    Row(
        "cli: code not a code",
        Cli(("verify", "{verifying}", "{code}x")),
        2,
        None,
        "a verification code is 6 to 8 digits",
        secret=lambda w: w.code + "x",
    ),
    Row(
        "cli: code while pending tasks are awaited",
        Cli(("verify", "{tasks}", "{code}")),
        1,
        None,
        "cannot submit a code in stage AWAITING_TASKS",
        secret=code,
    ),
    Row(
        "cli: cancel after the point of no return",
        Cli(("cancel", "{blocked}")),
        1,
        None,
        "purging has begun",
    ),
    Row(
        "cli: missing argument",
        Cli(("status",)),
        2,
        None,
        "the following arguments are required: account_id",
    ),
    Row("cli: account id SQL-shaped", Cli(("status", SQL)), 2, None, "not an account id"),
    Row(
        "cli: account id with a newline and escapes",
        Cli(("cancel", "acct-x\nTraceback (most recent call last):\x1b[2J")),
        2,
        None,
        "account id",
    ),
    Row(
        "cli: register with a malformed email",
        Cli(
            (
                "register",
                "--user-name",
                "mallory",
                "--email",
                "mallory.at.example",
                "--phone",
                "+14155550199",
            )
        ),
        2,
        None,
        "email",
        secret=lambda w: "mallory.at.example",
    ),
]


def _param(row: Row) -> Any:
    return pytest.param(row, id=row.name)


@pytest.mark.parametrize("row", [_param(row) for row in ROWS if not isinstance(row.send, Cli)])
async def test_bad_input_gets_a_clear_error_and_changes_nothing(world: World, row: Row) -> None:
    secrets = [world.code, world.old_code] + ([row.secret(world)] if row.secret else [])
    before = await state(world, *row.watch)
    signalled: str | None = None
    if isinstance(row.send, Http):
        await _check_http(world, row, row.send, secrets)
    elif isinstance(row.send, Signal):
        signalled = await _check_signal(world, row, row.send)
    elif isinstance(row.send, Update):
        await _check_update(world, row, row.send, secrets)
    assert_unchanged(row.name, before, await state(world, *row.watch), signalled)


@pytest.mark.parametrize("row", [_param(row) for row in ROWS if isinstance(row.send, Cli)])
async def test_bad_input_on_the_command_line_gets_a_clear_error_and_changes_nothing(
    world: World, cli_batch: CliBatch, row: Row
) -> None:
    """The CLI rows ran side by side (a process each takes seconds): each row's answer, and
    the state before and after all of them."""
    secrets = [world.code, world.old_code] + ([row.secret(world)] if row.secret else [])
    _check_cli(world, row, cli_batch.answers[row.name], secrets)
    assert_unchanged(f"{row.name} (in the CLI batch)", cli_batch.before, cli_batch.after, None)


async def _check_http(world: World, row: Row, send: Http, secrets: list[str]) -> None:
    path = world.fill(send.path)
    content = send.content(world) if send.content else None
    headers = dict(send.headers)
    if send.json is not None:
        content = json.dumps(send.json(world)).encode()
    if content is not None:
        headers["Content-Type"] = "application/json"
    body: bytes | AsyncIterator[bytes] | None = content
    if send.chunked and content is not None:
        body = _chunks(content)
    response = await world.api.request(send.method, path, content=body, headers=headers)
    text = response.text
    where = f"[{row.name}] {send.method} {path[:80]} → {response.status_code} {text[:300]}"
    assert response.status_code == row.expect, where
    media_type = "application/problem+json" if row.error is not None else "application/json"
    assert response.headers["content-type"].startswith(media_type), where
    answer = response.json()
    if row.error is not None:
        # RFC 9457 problem details, with the stable code as the `error` extension member.
        assert answer.get("error") == row.error, where
        assert answer.get("status") == row.expect, where
        assert isinstance(answer.get("title"), str) and isinstance(answer.get("type"), str), where
        assert isinstance(answer.get("detail"), str), where
        assert row.message.lower() in answer["detail"].lower(), where
    else:
        assert row.message in text.replace(" ", ""), where
        assert answer["run_id"] == (await world.handle("verifying").describe()).run_id, where
    for secret in secrets:
        assert secret not in text, f"{where}: echoes a secret"
    assert "Traceback" not in text, where


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(content), 4096):
        yield content[start : start + 4096]


async def _check_signal(world: World, row: Row, send: Signal) -> str | None:
    handle = world.handle(send.role)
    args = [send.arg(world)] if send.arg else []
    if row.expect == "ignored":
        await handle.signal(send.name, *args)
        return send.role
    with pytest.raises(RPCError) as refused:
        await handle.signal(send.name, *args)
    assert row.message in str(refused.value), f"[{row.name}] {refused.value}"
    return None


async def _check_update(world: World, row: Row, send: Update, secrets: list[str]) -> None:
    handle = world.handle(send.role)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        async with asyncio.timeout(20):
            await handle.execute_update(send.name, send.arg(world), result_type=CodeCheck)
    cause = refused.value.cause
    where = f"[{row.name}] {cause!r}"
    assert isinstance(cause, ApplicationError), where
    if row.expect != "ApplicationError":
        assert cause.type == row.expect, where
    assert row.message in cause.message, where
    for secret in secrets:
        assert secret not in f"{cause.message} {cause.details}", f"{where}: echoes a secret"


@dataclass(frozen=True)
class CliAnswer:
    args: list[str]
    exit_code: int | None
    stdout: bytes
    stderr: str


@dataclass(frozen=True)
class CliBatch:
    answers: dict[str, CliAnswer]
    before: State
    after: State


@pytest.fixture(scope="module")
async def cli_batch(world: World) -> CliBatch:
    """Every CLI row, a few processes at a time, between two snapshots of the state."""
    before = await state(world)
    slots = asyncio.Semaphore(4)

    async def answer(row: Row, send: Cli) -> tuple[str, CliAnswer]:
        args = [world.fill(arg) if "{" in arg else arg for arg in send.args]
        async with slots:
            process = await asyncio.create_subprocess_exec(
                str(installed_binary("account-deletion")),
                *args,
                env=world.cli_env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        return row.name, CliAnswer(args, process.returncode, out, err.decode())

    answers = await asyncio.gather(
        *(answer(row, row.send) for row in ROWS if isinstance(row.send, Cli))
    )
    return CliBatch(dict(answers), before, await state(world))


def _check_cli(world: World, row: Row, answer: CliAnswer, secrets: list[str]) -> None:
    where = (
        f"[{row.name}] exit {answer.exit_code}, stdout {answer.stdout[:200]!r},"
        f" stderr {answer.stderr[:300]!r}"
    )
    assert answer.exit_code == row.expect, where
    assert answer.stdout == b"", where
    assert "Traceback" not in answer.stderr, where
    lines = _message_lines(answer.stderr)
    assert len(lines) == 1, f"{where}: not one line"
    assert row.message in lines[0], where
    for secret in secrets:
        assert secret not in answer.stderr, f"{where}: echoes a secret"


def _message_lines(stderr: str) -> list[str]:
    """stderr without argparse's usage block (`usage: ...` and its indented continuation)."""
    lines: list[str] = []
    in_usage = False
    for line in stderr.splitlines():
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        lines.append(line)
    return lines


def test_the_table_covers_every_way_in() -> None:
    kinds = {type(row.send).__name__ for row in ROWS}
    assert kinds == {"Http", "Signal", "Update", "Cli"}
    assert len(ROWS) >= 20
    assert len({row.name for row in ROWS}) == len(ROWS), "row names are test ids: unique"
