"""The `account-deletion` command: the embedded stack, the processes, migrations, demo data,
registration and the operator verbs.

Exit codes: 0 done, 1 refused (the message says why), 2 bad usage, 3 not found,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from contract.names import ACCOUNT_ID_PATTERN, CODE_PATTERN, PLAIN_TEXT_PATTERN
from core.config import ConfigurationError, Settings

if TYPE_CHECKING:
    import asyncpg

    from contract.models import DeletionStatus
    from contract.stages import Stage
    from service.render import RowCount
    from starter.client import DeletionClient

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C (e.g. to stop `status --watch`): the deletion itself goes on."""


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
        verb.add_argument("account_id", type=_account_id)
        return verb

    start = account_verb("start", "start the deletion of an account (idempotent)")
    start.add_argument("--requested-by", default="operator")
    status = account_verb("status", "show a deletion's stage, pending tasks and products")
    status.add_argument(
        "--watch",
        action="store_true",
        help="redraw the status with a progress bar of rows purged per product until the run "
        "ends (DELETED, CANCELLED or EXPIRED), then print the final status and exit 0; "
        "on a terminal the screen is redrawn, otherwise each change is printed anew",
    )
    status.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help="seconds between redraws with --watch (default 1)",
    )
    verify = account_verb("verify", "submit the verification code the user received")
    verify.add_argument("code", type=_code)
    account_verb("resend", "send a new verification code")
    account_verb("recheck", "check the pending tasks again now")
    account_verb("retry", "retry the products whose purge failed")
    cancel = account_verb("cancel", "cancel before the point of no return")
    cancel.add_argument("--reason", type=_plain_text)
    account_verb("receipt", "print the receipt of a finished deletion as JSON")
    listing = commands.add_parser(
        "list",
        help="list deletions, most recently changed first",
        description="Deletions as recorded in PostgreSQL, most recently changed first. "
        "An open deletion is OVERDUE when it waits with a deadline (AWAITING_TASKS, "
        "AWAITING_VERIFICATION) and the deadline has passed: the run should have ended as "
        "EXPIRED, so no worker is moving it; or when it is in any other stage (PURGE_BLOCKED "
        "waiting for a fix and `retry`, or a working stage such as PURGING) and has not changed "
        "stage for longer than --overdue-after.",
    )
    listing.add_argument(
        "--stage",
        type=_stage,
        help="only deletions in this stage, e.g. PURGE_BLOCKED (case-insensitive)",
    )
    listing.add_argument(
        "--overdue",
        action="store_true",
        help="only overdue deletions: open, with their wait's deadline passed, or without a "
        "deadline and no stage change for longer than --overdue-after",
    )
    listing.add_argument(
        "--overdue-after",
        type=_duration,
        metavar="DURATION",
        help="how long a deletion may stay in a stage without a deadline (PURGE_BLOCKED, "
        "PURGING, ...) before it counts as overdue: 90s, 30m, 24h, 7d (default 24h)",
    )
    listing.add_argument("--limit", type=_positive_int, default=50, help="at most this many")
    return parser


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a whole number and a unit: 90s, 30m, 24h, 7d)"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _stage(text: str) -> Stage:
    from contract.stages import Stage

    try:
        return Stage(text.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown stage {text!r}; one of " + ", ".join(stage.value for stage in Stage)
        ) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.1 and 3600, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    from core.observability import configure_logging

    # JSON for the long-running processes whose logs a collector reads; text for people.
    configure_logging(
        settings, default_format="json" if args.command in ("worker", "api") else "text"
    )
    command: str = args.command
    if command != "dev":
        from service.embedded import embedded_defaults

        try:
            settings = embedded_defaults(settings)
        except RuntimeError as error:
            _err(str(error))
            return EXIT_REFUSED
    if command == "dev":
        from service.dev import run_dev

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
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _serve_api(settings: Settings, host: str | None, port: int | None) -> int:
    import uvicorn

    from service.api import create_app

    settings = settings.model_copy(
        update={"api_host": host or settings.api_host, "api_port": port or settings.api_port}
    )
    app = create_app(settings)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
    # that was there before it: this one, so that a graceful stop exits with status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # uvicorn's own lines go through our logging (JSON); no access log: it would record the
    # verification page's links, which are credentials (request metrics count requests).
    uvicorn.run(
        app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False
    )
    return 0


def _matching(pattern: str, expected: str) -> Callable[[str], str]:
    """An argparse type that refuses a value without repeating it (it may be a code, or hold
    characters that would garble the terminal)."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise argparse.ArgumentTypeError(expected)
        return value

    return check


_account_id = _matching(
    ACCOUNT_ID_PATTERN, "not an account id (letters, digits, '-' and '_', like acct-3f9a0c1d)"
)
_code = _matching(CODE_PATTERN, "a verification code is 6 to 8 digits")
_plain_text = _matching(PLAIN_TEXT_PATTERN, "must not contain control characters")


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
    from store.db import create_pool

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from store.db import migrate, wait_for_database

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    await wait_for_database(settings.database_url)
    async with _database(settings) as pool, pool.acquire() as conn:
        applied = await migrate(conn)
    _out(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "up to date")
    return 0


async def _seed(settings: Settings, args: argparse.Namespace) -> int:
    from demo.seed import seed_demo

    async with _database(settings) as pool:
        scenarios = await seed_demo(pool)
    if args.json:
        _out(json.dumps(scenarios))
    else:
        for name, account_id in scenarios.items():
            _out(f"{name:<12} {account_id}")
    return 0


async def _register(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.registration import IdentifierTaken, RegistrationRequest, register_account

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
    action: Callable[[DeletionClient, asyncpg.Pool, argparse.Namespace], Awaitable[str]],
) -> int:
    """Runs one operator verb on the same client as the API, mapping refusals to exit codes.

    The action gets the client, the pool (for read-only views the client does not offer,
    such as the rows left to purge) and the arguments, and returns what to print."""
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
            _out(await action(deletions, pool, args))
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
    async def with_pool(d: DeletionClient, pool: asyncpg.Pool, a: argparse.Namespace) -> str:
        return await action(d, a)

    async def run(settings: Settings, args: argparse.Namespace) -> int:
        return await _operator(settings, args, with_pool)

    return run


async def _start(d: DeletionClient, a: argparse.Namespace) -> str:
    started = await d.start(a.account_id, requested_by=a.requested_by)
    verb = "started" if started.started else "already in progress"
    return f"deletion {verb}: workflow {started.workflow_id} run {started.run_id}"


async def _status(d: DeletionClient, a: argparse.Namespace) -> str:
    from service.render import render_status

    return render_status(await d.status(a.account_id))


async def _status_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.watch:
        return await _operator(settings, args, _watch)
    return await _verb(_status)(settings, args)


CLEAR_SCREEN = "\x1b[H\x1b[2J"


async def _watch(d: DeletionClient, pool: asyncpg.Pool, a: argparse.Namespace) -> str:
    """Redraws the status, with a bar of rows purged per product, until the run reaches a final
    stage; returns the final status. On a terminal the screen is cleared and redrawn every
    interval; otherwise (a pipe, a log) a frame is printed only when it differs from the last."""
    import asyncpg
    from temporalio.service import RPCError

    from service.render import render_status

    transient = (RPCError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
    terminal = sys.stdout.isatty()
    status = await d.status(a.account_id)  # unknown account, no deletion: exit 3 at once
    progress = await _purge_counts(pool, status)
    note = ""
    shown: str | None = None
    while not status.stage.is_final:
        frame = render_status(status, progress) + note
        now = datetime.now(UTC)
        if terminal:
            sys.stdout.write(
                f"{CLEAR_SCREEN}{frame}\n\n{now:%H:%M:%S} UTC, every {a.interval:g}s;"
                " Ctrl-C stops watching (the deletion goes on)\n"
            )
        elif frame != shown:
            sys.stdout.write(f"--- {now:%H:%M:%S} UTC ---\n{frame}\n\n")
        sys.stdout.flush()
        shown = frame
        await asyncio.sleep(a.interval)
        try:
            status = await d.status(a.account_id)
            progress = await _purge_counts(pool, status)
            note = ""
        except transient as error:
            note = f"\n(status unavailable: {type(error).__name__}: {error}; trying again)"
    if terminal:
        sys.stdout.write(CLEAR_SCREEN)
    elif shown is not None:
        sys.stdout.write(f"--- {datetime.now(UTC):%H:%M:%S} UTC: the run ended ---\n")
    return render_status(status)


async def _purge_counts(pool: asyncpg.Pool, status: DeletionStatus) -> dict[str, RowCount] | None:
    """Per product: rows purged so far and rows still to purge, read in one snapshot so that
    the two add up; None before the purge is planned."""
    from registry.products import PRODUCTS_BY_NAME
    from service.render import RowCount
    from store.progress import rows_purged

    products = [
        PRODUCTS_BY_NAME[p.product] for p in status.products if p.product in PRODUCTS_BY_NAME
    ]
    if not products:
        return None
    counts: dict[str, RowCount] = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        purged = await rows_purged(conn, status.account_id)
        for product in products:
            # The probe's count of what the purge has yet to remove (SQL from the registry).
            remaining = 0
            for table in product.tables:
                remaining += int(await conn.fetchval(table.probe_sql, status.account_id))
            counts[product.name] = RowCount(purged.get(product.name, 0), remaining)
    return counts


async def _verify(d: DeletionClient, a: argparse.Namespace) -> str:
    from contract.models import VerificationOutcome
    from starter.client import CodeRefused

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
    from service.render import render_list
    from starter.records import DEFAULT_OVERDUE_AFTER

    overdue_after = DEFAULT_OVERDUE_AFTER if a.overdue_after is None else a.overdue_after
    listed = await d.list(a.stage, a.limit, overdue=a.overdue, overdue_after=overdue_after)
    what = "overdue deletions" if a.overdue else "deletions"
    return render_list(listed, empty=f"no {what}" + (f" in {a.stage.value}" if a.stage else ""))


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": _migrate,
    "seed-demo": _seed,
    "register": _register,
    "start": _verb(_start),
    "status": _status_command,
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
