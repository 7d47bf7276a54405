"""The `account-deletion` command line: its subcommands, their options and argument types.

Argument types refuse bad values with argparse's usage error (exit code 2).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from contract.names import (
    ACCOUNT_ID_PATTERN,
    CODE_PATTERN,
    PLAIN_TEXT_PATTERN,
    PRODUCT_NAME_PATTERN,
    REQUESTER_PATTERN,
)

BUNDLED_PRODUCTS = ("archive",)
"""The example products built with the kit that `product-worker` runs (`kit/archive`)."""

if TYPE_CHECKING:
    from contract.stages import Stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="account-deletion",
        description="Durable, verifiable deletion of cloud customer accounts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_processes(commands)

    def account_verb(name: str, help_text: str) -> argparse.ArgumentParser:
        verb = commands.add_parser(name, help=help_text)
        verb.add_argument("account_id", type=_account_id)
        return verb

    start = account_verb("start", "start the deletion of an account (idempotent)")
    start.add_argument("--requested-by", default="operator")
    start.add_argument(
        "--cooling-off",
        type=_cooling_off,
        metavar="DURATION",
        help="keep the account frozen and restorable this long before purging: an ISO 8601"
        " duration up to P90D, e.g. P15D (default PT0S: purge at once)",
    )
    status = account_verb("status", "show a deletion's stage, pending tasks and products")
    status_format = status.add_mutually_exclusive_group()
    status_format.add_argument("--json", action="store_true", help="print the status as JSON")
    status_format.add_argument(
        "--watch",
        action="store_true",
        help="redraw the status with a progress bar of rows purged per product until the run "
        "ends (DELETED, CANCELLED, EXPIRED or RESTORED), then print the final status and exit 0; "
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
    restore = account_verb(
        "restore", "give the account back during its cooling-off (unfrozen, nothing deleted)"
    )
    restore.add_argument("--reason", type=_plain_text)
    account_verb("receipt", "print the receipt of a finished deletion as JSON")
    unfreeze = account_verb(
        "unfreeze",
        "unfreeze an account whose deletion run ended (terminated) before purging began",
    )
    unfreeze.add_argument("--by", type=_operator, required=True, help="your operator id (audited)")
    confirm = account_verb(
        "confirm-purge",
        "confirm that a person purged a manual product of a deletion (its pending task says how)",
    )
    confirm.add_argument("product", type=_product, help="the manual product, e.g. tape_archive")
    confirm.add_argument(
        "--by", type=_operator, required=True, help="your operator id (audit log and receipt)"
    )
    _add_list(commands)
    return parser


def _add_processes(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The processes of the product: dev, worker, product-worker, api, and the admin verbs."""
    dev = commands.add_parser(
        "dev", help="run the whole product on embedded Temporal and PostgreSQL"
    )
    dev.add_argument("--no-demo", action="store_true", help="do not load the demo accounts")
    commands.add_parser("worker", help="run a worker on the task queue")
    product_worker = commands.add_parser(
        "product-worker",
        help="run the purge worker of a bundled example product (its own database)",
        description="The worker a product team runs (driver `worker`): the product's purge and "
        "live-resource check on task queue account-deletion-product-<name>, against the "
        "product's own database (archive: ARCHIVE_DATABASE_URL, unset: the database `archive` "
        "of the embedded PostgreSQL).",
    )
    product_worker.add_argument("product", choices=BUNDLED_PRODUCTS)
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


def _add_list(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`list`: the deletions as recorded, a page at a time."""
    listing = commands.add_parser(
        "list",
        help="list deletions, most recently changed first",
        description="Deletions as recorded in PostgreSQL, most recently changed first. "
        "An open deletion is OVERDUE when it waits with a deadline (AWAITING_TASKS, "
        "AWAITING_VERIFICATION, or COOLING_OFF until purging starts) and the deadline has "
        "passed: the run should have moved on, so no worker is moving it; or when it is in "
        "any other stage (PURGE_BLOCKED waiting for a fix and `retry`, or a working stage such "
        "as PURGING) and has not changed stage for longer than --overdue-after.",
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
    listing.add_argument(
        "--limit", type=_positive_int, default=50, help="at most this many (a page; max 500)"
    )
    listing.add_argument(
        "--cursor", help="the next page of a listing: the cursor the previous page printed"
    )
    listing.add_argument(
        "--json", action="store_true", help='print {"items": [...], "next_cursor": ...}'
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("account-deletion")
    except PackageNotFoundError:
        return "(not installed)"


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a whole number and a unit: 90s, 30m, 24h, 7d)"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _cooling_off(text: str) -> timedelta:
    from contract.cooling_off import parse_cooling_off

    try:
        return parse_cooling_off(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
_operator = _matching(REQUESTER_PATTERN, "an operator id: letters, digits and . _ : - only")
_product = _matching(PRODUCT_NAME_PATTERN, "a product name: lowercase letters, digits and _")
