"""The `account-deletion` command: the embedded stack, the processes, migrations, demo data,
registration and the operator verbs.

Exit codes: 0 done, 1 refused (the message says why), 2 bad usage, 3 not found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from starter.config import ConfigurationError, Settings

if TYPE_CHECKING:
    from starter.client import DeletionClient

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="account-deletion",
        description="Durable, verifiable deletion of cloud customer accounts.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev", help="run the whole product on embedded Temporal and PostgreSQL"
    )
    dev.add_argument("--no-demo", action="store_true", help="do not load the demo accounts")
    commands.add_parser("worker", help="run a worker on the task queue")
    api = commands.add_parser("api", help="serve the HTTP API and the verification page")
    api.add_argument("--host", default=None, help="bind address (env API_HOST)")
    api.add_argument("--port", type=int, default=None, help="port (env API_PORT)")
    commands.add_parser("migrate", help="apply the database migrations")
    seed = commands.add_parser("seed-demo", help="create the demo accounts (idempotent)")
    seed.add_argument("--json", action="store_true", help="print {scenario: account_id} as JSON")

    register = commands.add_parser("register", help="register an account")
    register.add_argument("--user-name", required=True)
    register.add_argument("--email", required=True)
    register.add_argument("--phone", required=True, help="international format, e.g. +14155550123")
    register.add_argument("--display-name")

    def account_verb(name: str, help_text: str) -> argparse.ArgumentParser:
        verb = commands.add_parser(name, help=help_text)
        verb.add_argument("account_id")
        return verb

    start = account_verb("start", "start the deletion of an account (idempotent)")
    start.add_argument("--requested-by", default="operator")
    account_verb("status", "show a deletion's stage, pending tasks and products")
    verify = account_verb("verify", "submit the verification code the user received")
    verify.add_argument("code")
    account_verb("resend", "send a new verification code")
    account_verb("recheck", "check the pending tasks again now")
    account_verb("retry", "retry the products whose purge failed")
    cancel = account_verb("cancel", "cancel before the point of no return")
    cancel.add_argument("--reason")
    account_verb("receipt", "print the receipt of a finished deletion as JSON")
    listing = commands.add_parser("list", help="list deletions, newest first")
    listing.add_argument("--stage", help="only deletions in this stage, e.g. PURGE_BLOCKED")
    listing.add_argument("--limit", type=int, default=50)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    command: str = args.command
    if command != "dev":
        from starter.embedded import embedded_defaults

        try:
            settings = embedded_defaults(settings)
        except RuntimeError as error:
            _err(str(error))
            return EXIT_REFUSED
    if command == "dev":
        from starter.dev import run_dev

        return run_dev(settings, load_demo=not args.no_demo)
    try:
        if command == "worker":
            from worker import run_worker

            asyncio.run(run_worker(settings))
            return 0
        if command == "api":
            return _serve_api(settings, args.host, args.port)
        handler = _COMMANDS[command]
        return asyncio.run(handler(settings, args))
    except ConfigurationError as error:
        _err(str(error))
        return EXIT_USAGE


def _serve_api(settings: Settings, host: str | None, port: int | None) -> int:
    import uvicorn

    from starter.api import create_app

    settings = settings.model_copy(
        update={"api_host": host or settings.api_host, "api_port": port or settings.api_port}
    )
    app = create_app(settings)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
    # that was there before it: this one, so that a graceful stop exits with status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(app, host=settings.api_host, port=settings.api_port)
    return 0


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"account-deletion: {text}\n")


def _json(model: BaseModel | dict[str, Any] | list[Any]) -> str:
    if isinstance(model, BaseModel):
        return model.model_dump_json(indent=2)
    return json.dumps(model, indent=2, default=str)


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Any]:
    from activities.db import create_pool

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from activities.db import migrate, wait_for_database

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    await wait_for_database(settings.database_url)
    async with _database(settings) as pool, pool.acquire() as conn:
        applied = await migrate(conn)
    _out(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "up to date")
    return 0


async def _seed(settings: Settings, args: argparse.Namespace) -> int:
    from activities.demo import seed_demo

    async with _database(settings) as pool:
        scenarios = await seed_demo(pool)
    if args.json:
        _out(json.dumps(scenarios))
    else:
        for name, account_id in scenarios.items():
            _out(f"{name:<12} {account_id}")
    return 0


async def _register(settings: Settings, args: argparse.Namespace) -> int:
    from activities.registration import IdentifierTaken, RegistrationRequest, register_account

    try:
        request = RegistrationRequest(
            user_name=args.user_name,
            email=args.email,
            phone=args.phone,
            display_name=args.display_name,
        )
    except ValidationError as error:
        for problem in error.errors(include_input=False):
            _err(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}")
        return EXIT_USAGE
    async with _database(settings) as pool:
        try:
            account = await register_account(pool, request)
        except IdentifierTaken as taken:
            _err(str(taken))
            return EXIT_REFUSED
    _out(_json(account))
    return 0


async def _operator(
    settings: Settings,
    args: argparse.Namespace,
    action: Callable[[DeletionClient, argparse.Namespace], Awaitable[str]],
) -> int:
    """Runs one operator verb on the same client as the API, mapping refusals to exit codes."""
    from starter.client import (
        AccountNotFound,
        DeletionClient,
        DeletionError,
        DeletionNotFound,
        connect,
    )

    async with _database(settings) as pool:
        deletions = DeletionClient(await connect(settings), pool, settings.temporal_task_queue)
        try:
            _out(await action(deletions, args))
        except (AccountNotFound, DeletionNotFound) as missing:
            _err(str(missing))
            return EXIT_NOT_FOUND
        except DeletionError as refused:
            _err(str(refused))
            return EXIT_REFUSED
        except ValidationError as error:
            for problem in error.errors(include_input=False):
                _err(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}")
            return EXIT_USAGE
    return 0


def _verb(
    action: Callable[[DeletionClient, argparse.Namespace], Awaitable[str]],
) -> Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]:
    async def run(settings: Settings, args: argparse.Namespace) -> int:
        return await _operator(settings, args, action)

    return run


async def _start(d: DeletionClient, a: argparse.Namespace) -> str:
    started = await d.start(a.account_id, requested_by=a.requested_by)
    verb = "started" if started.started else "already in progress"
    return f"deletion {verb}: workflow {started.workflow_id} run {started.run_id}"


async def _status(d: DeletionClient, a: argparse.Namespace) -> str:
    from starter.render import render_status

    return render_status(await d.status(a.account_id))


async def _verify(d: DeletionClient, a: argparse.Namespace) -> str:
    from starter.client import CodeRefused
    from workflows.models import VerificationOutcome

    check = await d.verify(a.account_id, a.code)
    if check.outcome is VerificationOutcome.ACCEPTED:
        return "code accepted: the account is being deleted"
    raise CodeRefused(
        {
            VerificationOutcome.WRONG: f"wrong code: {check.attempts_left} attempt(s) left",
            VerificationOutcome.EXPIRED: "the code has expired or was replaced: `resend` one",
            VerificationOutcome.LOCKED: "too many wrong attempts on this code: `resend` one",
        }[check.outcome]
    )


async def _resend(d: DeletionClient, a: argparse.Namespace) -> str:
    await d.resend_code(a.account_id)
    return "a new code is on its way"


async def _recheck(d: DeletionClient, a: argparse.Namespace) -> str:
    await d.recheck(a.account_id)
    return "pending tasks will be checked again"


async def _retry(d: DeletionClient, a: argparse.Namespace) -> str:
    await d.retry(a.account_id)
    return "failed purges will be retried"


async def _cancel(d: DeletionClient, a: argparse.Namespace) -> str:
    await d.cancel(a.account_id, a.reason)
    return "the deletion will be cancelled"


async def _receipt(d: DeletionClient, a: argparse.Namespace) -> str:
    return _json(await d.receipt(a.account_id))


async def _list(d: DeletionClient, a: argparse.Namespace) -> str:
    from starter.render import render_list
    from workflows.models import Stage

    stage = None
    if a.stage:
        try:
            stage = Stage(a.stage.upper())
        except ValueError:
            raise SystemExit(
                f"account-deletion: unknown stage {a.stage!r}; one of "
                + ", ".join(s.value for s in Stage)
            ) from None
    return render_list(await d.list(stage, a.limit))


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": _migrate,
    "seed-demo": _seed,
    "register": _register,
    "start": _verb(_start),
    "status": _verb(_status),
    "verify": _verb(_verify),
    "resend": _verb(_resend),
    "recheck": _verb(_recheck),
    "retry": _verb(_retry),
    "cancel": _verb(_cancel),
    "receipt": _verb(_receipt),
    "list": _verb(_list),
}


if __name__ == "__main__":
    sys.exit(main())
