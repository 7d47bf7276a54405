"""The `account-deletion` command: the embedded stack, the processes, migrations, demo data,
registration and the operator verbs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="account-deletion",
        description="Durable, verifiable deletion of cloud customer accounts.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("dev", help="run the whole product on embedded Temporal and PostgreSQL")
    commands.add_parser("worker", help="run a worker on the task queue")
    api = commands.add_parser("api", help="serve the HTTP API and the verification page")
    api.add_argument("--host", default=None, help="bind address (env API_HOST)")
    api.add_argument("--port", type=int, default=None, help="port (env API_PORT)")
    commands.add_parser("migrate", help="apply the database migrations")
    seed = commands.add_parser("seed-demo", help="create the demo accounts (idempotent)")
    seed.add_argument("--json", action="store_true", help="print {scenario: account_id} as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise SystemExit(f"{args.command}: not wired yet")


if __name__ == "__main__":
    sys.exit(main())
