"""The operator verbs: start, status (and --watch), verify, resend, recheck, retry, cancel,
restore, receipt and list, each run on the same client as the API."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from core.config import Settings
from service.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    Command,
    database,
    err,
    invalid,
    out,
    to_json,
)

if TYPE_CHECKING:
    import asyncpg

    from contract.models import DeletionStatus
    from service.cli.render import RowCount
    from starter.client import DeletionClient


async def _operator(
    settings: Settings,
    args: argparse.Namespace,
    action: Callable[[DeletionClient, asyncpg.Pool, argparse.Namespace], Awaitable[str]],
) -> int:
    """Runs one operator verb on the same client as the API, mapping refusals to exit codes.

    The action gets the client, the pool (for read-only views the client does not offer,
    such as the rows left to purge) and the arguments, and returns what to print."""
    from starter.client import DeletionClient, connect
    from starter.errors import AccountNotFound, DeletionError, DeletionNotFound

    async with database(settings) as pool:
        deletions = DeletionClient(await connect(settings), pool, settings.temporal_task_queue)
        try:
            out(await action(deletions, pool, args))
        except (AccountNotFound, DeletionNotFound) as missing:
            err(str(missing))
            return EXIT_NOT_FOUND
        except DeletionError as refused:
            err(str(refused))
            return EXIT_REFUSED
        except ValidationError as error:
            return invalid(error)
    return 0


def _verb(
    action: Callable[[DeletionClient, argparse.Namespace], Awaitable[str]],
) -> Command:
    async def with_pool(d: DeletionClient, pool: asyncpg.Pool, a: argparse.Namespace) -> str:
        return await action(d, a)

    async def run(settings: Settings, args: argparse.Namespace) -> int:
        return await _operator(settings, args, with_pool)

    return run


async def _start(d: DeletionClient, a: argparse.Namespace) -> str:
    started = await d.start(a.account_id, requested_by=a.requested_by, cooling_off=a.cooling_off)
    verb = "started" if started.started else "already in progress"
    return f"deletion {verb}: workflow {started.workflow_id} run {started.run_id}"


async def _status(d: DeletionClient, a: argparse.Namespace) -> str:
    from service.cli.render import render_status

    status = await d.status(a.account_id)
    return to_json(status) if a.json else render_status(status)


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

    from service.cli.render import render_status

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
        if (task := asyncio.current_task()) is not None and task.cancelling():
            # Ctrl-C cancelled a call in flight, which may surface as its own error (an RPC
            # CANCELLED) or as none: stop watching, never go round again.
            raise asyncio.CancelledError
    if terminal:
        sys.stdout.write(CLEAR_SCREEN)
    elif shown is not None:
        sys.stdout.write(f"--- {datetime.now(UTC):%H:%M:%S} UTC: the run ended ---\n")
    return render_status(status)


async def _purge_counts(pool: asyncpg.Pool, status: DeletionStatus) -> dict[str, RowCount] | None:
    """Per product: rows purged so far and rows still to purge, read in one snapshot so that
    the two add up; None before the purge is planned."""
    from registry.products import PRODUCTS_BY_NAME
    from service.cli.render import RowCount
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
    from starter.errors import CodeRefused

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


async def _restore(d: DeletionClient, a: argparse.Namespace) -> str:
    await d.restore(a.account_id, a.reason)
    return "the account will be restored: unfrozen, nothing deleted"


async def _unfreeze(d: DeletionClient, a: argparse.Namespace) -> str:
    await d.unfreeze(a.account_id, a.by)
    return f"account {a.account_id} is active again (unfrozen by {a.by})"


async def _confirm_purge(d: DeletionClient, a: argparse.Namespace) -> str:
    await d.confirm_purge(a.account_id, a.product, a.by)
    return f"the purge of {a.product} is confirmed by {a.by}; the deletion goes on"


async def _receipt(d: DeletionClient, a: argparse.Namespace) -> str:
    return to_json(await d.receipt(a.account_id))


async def _list(d: DeletionClient, a: argparse.Namespace) -> str:
    from service.cli.render import render_list
    from starter.records import DEFAULT_OVERDUE_AFTER

    overdue_after = DEFAULT_OVERDUE_AFTER if a.overdue_after is None else a.overdue_after
    page = await d.list(
        a.stage, min(a.limit, 500), overdue=a.overdue, overdue_after=overdue_after, cursor=a.cursor
    )
    if a.json:
        return to_json(page)
    what = "overdue deletions" if a.overdue else "deletions"
    shown = render_list(
        page.items, empty=f"no {what}" + (f" in {a.stage.value}" if a.stage else "")
    )
    if page.next_cursor:
        shown += f"\n(more: the same command with --cursor {page.next_cursor})"
    return shown


COMMANDS: dict[str, Command] = {
    "start": _verb(_start),
    "status": _status_command,
    "verify": _verb(_verify),
    "resend": _verb(_resend),
    "recheck": _verb(_recheck),
    "retry": _verb(_retry),
    "cancel": _verb(_cancel),
    "restore": _verb(_restore),
    "receipt": _verb(_receipt),
    "unfreeze": _verb(_unfreeze),
    "confirm-purge": _verb(_confirm_purge),
    "list": _verb(_list),
}
