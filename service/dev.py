"""`account-deletion dev`: the whole product on one machine with nothing but Python.

Starts (unless TEMPORAL_ADDRESS / DATABASE_URL point elsewhere) a Temporal dev server with
its Web UI and an embedded PostgreSQL, both keeping their data under DATA_DIR; applies the
migrations, loads the demo accounts, then runs the worker and the API in this process until
Ctrl-C, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import uvicorn
from pydantic import SecretStr
from temporalio.client import Client

from core.codec import PayloadKey
from core.config import ConfigurationError, Settings
from service.embedded import (
    API_TOKEN_FILE,
    CODE_HASH_KEY_FILE,
    PAYLOAD_KEYS_FILE,
    EmbeddedPostgres,
    EmbeddedTemporal,
    require_dev_extra,
)
from starter.connection import with_temporal_profile

logger = logging.getLogger(__name__)


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path`, made by `make` the first time.

    The file is created with mode 0600 in the same call that creates it (O_CREAT|O_EXCL), so
    there is no moment at which another user could open it, and O_EXCL never writes through
    a file or link planted at that path: `dev` then refuses instead.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(make() + "\n")
    if path.is_symlink() or not path.is_file():
        raise ConfigurationError(f"{path} is not a regular file: remove it and start `dev` again")
    return path.read_text().strip()


def _dev_token(settings: Settings) -> str:
    """The API token: API_TOKEN if set, otherwise one made once and kept under DATA_DIR."""
    if settings.api_token:
        return settings.api_token
    return secret_file(settings.data_dir / API_TOKEN_FILE, lambda: secrets.token_urlsafe(24))


def _dev_payload_keys(settings: Settings) -> SecretStr:
    """PAYLOAD_KEYS if set, otherwise a key made once and kept under DATA_DIR.

    Histories in the dev server's SQLite file stay readable across restarts only with the
    same key: rotate by putting a new `id:key` entry first in that file (or in PAYLOAD_KEYS).
    """
    if settings.payload_keys is not None:
        return settings.payload_keys
    path = settings.data_dir / PAYLOAD_KEYS_FILE
    return SecretStr(secret_file(path, lambda: PayloadKey.generate("dev1").entry()))


def _dev_code_hash_key(settings: Settings) -> SecretStr:
    """CODE_HASH_KEY if set, otherwise a key made once and kept under DATA_DIR (codes issued
    before a restart are still checked after it)."""
    if settings.code_hash_key is not None:
        return settings.code_hash_key
    path = settings.data_dir / CODE_HASH_KEY_FILE
    return SecretStr(secret_file(path, lambda: PayloadKey.generate("dev1").entry()))


def run_dev(settings: Settings, *, load_demo: bool = True) -> int:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ui_url = None
    # The embedded UI has no login, so it cannot authenticate to the codec server: it gets a
    # secret of its own in the codec endpoint's path, made anew at every start and handed
    # to nothing else (see service.api.codec_access).
    ui_codec_secret: str | None = None
    settings = with_temporal_profile(settings)  # a profile's server instead of the embedded one
    require_dev_extra(settings)
    with ExitStack() as stack:
        update: dict[str, object] = {
            "api_token": _dev_token(settings),
            "payload_keys": _dev_payload_keys(settings),
            "code_hash_key": _dev_code_hash_key(settings),
        }
        if settings.database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir / "postgres")
            sys.stderr.write("starting embedded PostgreSQL ...\n")
            update["database_url"] = postgres.start()
            stack.callback(postgres.stop)
        if settings.temporal_address is None:
            ui_codec_secret = secrets.token_urlsafe(32)
            temporal = EmbeddedTemporal(
                settings.data_dir / "temporal.db",
                port=settings.temporal_dev_port,
                ui_port=settings.temporal_ui_port,
                namespace=settings.temporal_namespace,
                # The UI decodes payloads through the API's codec server, from the browser.
                ui_codec_endpoint=f"{settings.base_url()}/codec/{ui_codec_secret}",
            )
            sys.stderr.write("starting Temporal dev server ...\n")
            temporal.start()
            stack.callback(temporal.stop)
            update["temporal_address"] = temporal.address
            ui_url = temporal.ui_url
        settings = settings.model_copy(update=update)
        try:
            asyncio.run(
                _serve(
                    settings, load_demo=load_demo, ui_url=ui_url, ui_codec_secret=ui_codec_secret
                )
            )
        except KeyboardInterrupt:
            pass
        sys.stderr.write("stopping ...\n")
    sys.stderr.write("stopped; data kept in " + str(settings.data_dir) + "\n")
    return 0


async def _connect(settings: Settings) -> Client:
    from starter.client import connect

    for attempt in range(60):
        try:
            return await connect(settings)
        except RuntimeError:
            if attempt == 59:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def _serve(
    settings: Settings, *, load_demo: bool, ui_url: str | None, ui_codec_secret: str | None
) -> None:
    from demo import seed_demo
    from service.api import create_app
    from store.db import create_pool, migrate, wait_for_database
    from worker import build_worker, event_relay, make_notifier

    assert settings.database_url is not None
    await wait_for_database(settings.database_url)
    pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            logger.info("applied migrations: %s", ", ".join(applied))
        demo = await seed_demo(pool) if load_demo else {}
        client = await _connect(settings)
        # `dev` alone may use the log notifier: its console is the user's inbox.
        worker = build_worker(client, pool, make_notifier(settings, allow_log=True), settings)
        app = create_app(settings, pool=pool, client=client, ui_codec_secret=ui_codec_secret)
        server = uvicorn.Server(
            uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning")
        )
        relay = event_relay(settings, pool)  # as the worker process runs it
        stop_relay = asyncio.Event()
        async with worker:
            relaying = asyncio.create_task(relay.run(stop_relay)) if relay else None
            _banner(settings, ui_url, demo)
            try:
                await server.serve()
            finally:
                stop_relay.set()
                if relay is not None and relaying is not None:
                    await relaying
                    await relay.aclose()
    finally:
        await pool.close()


def _banner(settings: Settings, ui_url: str | None, demo: dict[str, str]) -> None:
    base = settings.base_url()
    lines = [
        "",
        f"account-deletion is running (Ctrl-C stops it; data stays in {settings.data_dir})",
        "",
        f"  Temporal UI        {ui_url or f'(the UI of {settings.temporal_address})'}",
        f"  API docs           {base}/docs",
        f"  API token          {settings.api_token}",
        "  verification page  returned as verification_url when a deletion starts",
        "  codes              shown below as [dev inbox] messages",
        "",
    ]
    if demo:
        lines.append("  demo accounts:")
        lines += [f"    {name:<11} {account_id}" for name, account_id in demo.items()]
        first = demo.get("clean", next(iter(demo.values())))
        lines += [
            "",
            "  try:",
            f"    curl -s -X POST -H 'Authorization: Bearer {settings.api_token}' "
            f"{base}/v1/accounts/{first}/deletion",
            "",
        ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
