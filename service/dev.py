"""`account-deletion dev`: the whole product on one machine with nothing but Python.

Starts (unless TEMPORAL_ADDRESS / DATABASE_URL point elsewhere) a Temporal dev server with
its Web UI and an embedded PostgreSQL, both keeping their data under DATA_DIR; applies the
migrations, loads the demo accounts, then runs the worker and the API in this process until
Ctrl-C, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from contextlib import ExitStack

import uvicorn
from pydantic import SecretStr
from temporalio.client import Client

from core.codec import PayloadKey
from core.config import Settings
from service.embedded import PAYLOAD_KEYS_FILE, EmbeddedPostgres, EmbeddedTemporal

logger = logging.getLogger(__name__)


def _dev_token(settings: Settings) -> str:
    """The API token: API_TOKEN if set, otherwise one made once and kept under DATA_DIR."""
    if settings.api_token:
        return settings.api_token
    path = settings.data_dir / "api-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _dev_payload_keys(settings: Settings) -> SecretStr:
    """PAYLOAD_KEYS if set, otherwise a key made once and kept under DATA_DIR.

    Histories in the dev server's SQLite file stay readable across restarts only with the
    same key: rotate by putting a new `id:key` entry first in that file (or in PAYLOAD_KEYS).
    """
    if settings.payload_keys is not None:
        return settings.payload_keys
    path = settings.data_dir / PAYLOAD_KEYS_FILE
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(PayloadKey.generate("dev1").entry() + "\n")
    return SecretStr(path.read_text().strip())


def run_dev(settings: Settings, *, load_demo: bool = True) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ui_url = None
    with ExitStack() as stack:
        update: dict[str, object] = {
            "api_token": _dev_token(settings),
            "payload_keys": _dev_payload_keys(settings),
        }
        if settings.database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir / "postgres")
            sys.stderr.write("starting embedded PostgreSQL ...\n")
            update["database_url"] = postgres.start()
            stack.callback(postgres.stop)
        if settings.temporal_address is None:
            temporal = EmbeddedTemporal(
                settings.data_dir / "temporal.db",
                port=settings.temporal_dev_port,
                ui_port=settings.temporal_ui_port,
                namespace=settings.temporal_namespace,
                # The UI decodes payloads through the API's codec server, from the browser.
                ui_codec_endpoint=f"{settings.base_url()}/codec",
            )
            sys.stderr.write("starting Temporal dev server ...\n")
            temporal.start()
            stack.callback(temporal.stop)
            update["temporal_address"] = temporal.address
            # Its UI has no login, so it cannot authenticate to the codec server: trust it
            # from this machine, by its origin (see service.api.codec_access).
            update["codec_trust_local_ui"] = True
            ui_url = temporal.ui_url
        settings = settings.model_copy(update=update)
        try:
            asyncio.run(_serve(settings, load_demo=load_demo, ui_url=ui_url))
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


async def _serve(settings: Settings, *, load_demo: bool, ui_url: str | None) -> None:
    from demo import seed_demo
    from service.api import create_app
    from store.db import create_pool, migrate, wait_for_database
    from worker import build_worker, make_notifier

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
        worker = build_worker(client, pool, make_notifier(settings), settings)
        app = create_app(settings, pool=pool, client=client)
        server = uvicorn.Server(
            uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning")
        )
        async with worker:
            _banner(settings, ui_url, demo)
            await server.serve()
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
