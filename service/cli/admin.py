"""The commands that run or prepare the product: `dev`, `worker`, `product-worker`, `api`,
`migrate`, `seed-demo` and `register`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from pydantic import ValidationError

from core.config import ConfigurationError, Settings
from service.cli.common import EXIT_REFUSED, Command, database, err, invalid, out, to_json


def dev(settings: Settings, args: argparse.Namespace) -> int:
    from service.dev import run_dev

    return run_dev(settings, load_demo=not args.no_demo)


def worker(settings: Settings) -> int:
    from worker import run_worker

    asyncio.run(run_worker(settings))
    return 0


def product_worker(settings: Settings, product: str) -> int:
    """A bundled example product's worker (`archive`), until SIGTERM/SIGINT."""
    asyncio.run(_product_worker(settings, product))
    return 0


async def _product_worker(settings: Settings, product: str) -> None:
    from datetime import timedelta

    from core.codec import data_converter
    from core.observability import metrics_bind_address, sdk_runtime
    from kit.archive import NAME, run_archive_worker
    from service.embedded import archive_database_url
    from starter.client import connect

    assert product == NAME, product  # the parser offers the bundled products only
    # Every setting is checked before anything connects: a bad one is one line, exit 2.
    data_converter(settings)
    metrics_address = metrics_bind_address(settings)
    database_url = await archive_database_url(settings)
    client = await connect(settings, sdk_runtime(metrics_address))
    await run_archive_worker(
        client,
        database_url,
        batch_size=settings.purge_batch_size,
        batch_budget=settings.purge_batch_budget,
        shutdown=timedelta(seconds=settings.worker_shutdown_seconds),
    )


def serve_api(settings: Settings, host: str | None, port: int | None) -> int:
    import uvicorn

    from core.codec import data_converter
    from service.api import create_app

    settings = settings.model_copy(
        update={"api_host": host or settings.api_host, "api_port": port or settings.api_port}
    )
    app = create_app(settings)
    # What the app's start-up needs, checked now: a ConfigurationError there would reach
    # uvicorn, which logs it with a traceback; here `main` prints it in one line.
    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    data_converter(settings)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
    # that was there before it: this one, so that a graceful stop exits with status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # uvicorn's own lines go through our logging (JSON); no access log: it would record the
    # verification page's links, which are credentials (request metrics count requests).
    uvicorn.run(
        app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False
    )
    return 0


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from store.db import migrate, wait_for_database

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    await wait_for_database(settings.database_url)
    async with database(settings) as pool, pool.acquire() as conn:
        applied = await migrate(conn)
    out(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "up to date")
    return 0


async def _seed(settings: Settings, args: argparse.Namespace) -> int:
    from demo import seed_demo
    from demo.archive import seed_demo_archive
    from service.embedded import ARCHIVE_DATABASE_NAME, database_beside
    from store.db import create_pool

    async with database(settings) as pool:
        scenarios = await seed_demo(pool)
        # The example product's data too, when its database is known: ARCHIVE_DATABASE_URL,
        # or the `archive` database `dev` made beside this one.
        archive_url = settings.archive_database_url
        if archive_url is None and await pool.fetchval(
            "select exists (select 1 from pg_database where datname = $1)", ARCHIVE_DATABASE_NAME
        ):
            assert settings.database_url is not None
            archive_url = database_beside(settings.database_url, ARCHIVE_DATABASE_NAME)
        if archive_url is not None:
            archive = await create_pool(archive_url, max_size=2)
            try:
                await seed_demo_archive(pool, archive, scenarios)
            finally:
                await archive.close()
    if args.json:
        out(json.dumps(scenarios))
    else:
        for name, account_id in scenarios.items():
            out(f"{name:<12} {account_id}")
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
        return invalid(error)
    async with database(settings) as pool:
        try:
            account = await register_account(pool, request)
        except IdentifierTaken as taken:
            err(str(taken))
            return EXIT_REFUSED
    out(to_json(account))
    return 0


COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "seed-demo": _seed,
    "register": _register,
}
"""The asynchronous commands, by name (`dev`, `worker` and `api` run their own loops)."""
