"""The `account-deletion` command: the embedded stack, the processes, migrations, demo data,
registration and the operator verbs.

Exit codes: 0 done, 1 refused (the message says why), 2 bad usage, 3 not found,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from core.config import ConfigurationError, load_settings
from service.cli import admin, operator
from service.cli.common import EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_USAGE, err
from service.cli.parser import build_parser

_COMMANDS = admin.COMMANDS | operator.COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigurationError as error:
        # One line, never a traceback: the message names the setting and what to do.
        err(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def console_script() -> NoReturn:
    """The `account-deletion` executable: `main`, then an exit that skips the interpreter's
    finalization. The Temporal SDK's native threads may still call into Python while the
    interpreter finalizes, and CPython then aborts the process (SIGABRT, exit -6) after the
    command has printed its answer: seen under load in the test suite. Everything the command
    opened is closed by then (its pools and servers are context managers); what is buffered is
    flushed here."""
    code = main()
    from core.tracing import flush_tracing

    flush_tracing()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    from core.observability import configure_logging

    # JSON for the long-running processes whose logs a collector reads; text for people.
    configure_logging(
        settings,
        default_format="json" if args.command in ("worker", "product-worker", "api") else "text",
    )
    command: str = args.command
    from core.tracing import configure_tracing

    configure_tracing(settings, f"account-deletion-{command}")
    if command != "dev":
        from service.embedded import embedded_defaults

        try:
            # A product's worker has a database of its own, never this service's.
            settings = embedded_defaults(settings, database=command != "product-worker")
        except RuntimeError as error:
            err(str(error))
            return EXIT_REFUSED
    if command == "dev":
        return admin.dev(settings, args)
    if command == "worker":
        return admin.worker(settings)
    if command == "product-worker":
        return admin.product_worker(settings, args.product)
    if command == "api":
        return admin.serve_api(settings, args.host, args.port)
    handler = _COMMANDS[command]
    return asyncio.run(handler(settings, args))
