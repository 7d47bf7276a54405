"""`account-deletion dev`: the whole product on one machine with nothing but Python.

Starts (unless TEMPORAL_ADDRESS / DATABASE_URL point elsewhere) a Temporal dev server with
its Web UI and an embedded PostgreSQL, both keeping their data under DATA_DIR; applies the
migrations, loads the demo accounts, then runs the worker and the API in this process until
Ctrl-C, and stops everything it started. The example product `archive` (driver `worker`,
declared in dev's own products file) runs as a process of its own on its own database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
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
        settings, archive_url = _product_worker(settings, stack)
        try:
            asyncio.run(
                _serve(
                    settings,
                    load_demo=load_demo,
                    ui_url=ui_url,
                    ui_codec_secret=ui_codec_secret,
                    archive_url=archive_url,
                )
            )
        except KeyboardInterrupt:
            pass
        sys.stderr.write("stopping ...\n")
    sys.stderr.write("stopped; data kept in " + str(settings.data_dir) + "\n")
    return 0


DEV_PRODUCTS = """\
# Written by `account-deletion dev` (PRODUCTS_FILE unset): the products beyond the built-in
# ones. `archive` is the kit's example product; dev runs its worker as a process of its own.
[[product]]
name = "archive"
driver = "worker"
title = "Archive Storage"
"""


def _product_worker(settings: Settings, stack: ExitStack) -> tuple[Settings, str | None]:
    """Starts `account-deletion product-worker archive` when the products file (dev's own,
    unless PRODUCTS_FILE is set) declares `archive` with driver worker. Returns the settings
    with that file, and the archive's database URL (None when it is not declared). The
    process stops with dev (and if dev dies: SIGTERM)."""
    from contract.models import ProductDriver
    from registry.catalog import load_catalog
    from service.embedded import archive_database_url

    if settings.products_file is None:
        path = settings.data_dir / "products.toml"
        path.write_text(DEV_PRODUCTS)
        settings = settings.model_copy(update={"products_file": path})
    archive = load_catalog(settings.products_file).declared_product("archive")
    if archive is None or archive.driver is not ProductDriver.WORKER:
        return settings, None
    url = asyncio.run(archive_database_url(settings))
    assert settings.temporal_address is not None and settings.payload_keys is not None
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "ARCHIVE_DATABASE_URL": url,
        "PAYLOAD_KEYS": settings.payload_keys.get_secret_value(),
        "DATA_DIR": str(settings.data_dir),
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
        "WORKER_METRICS_ADDRESS": "off",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "product-worker", "archive"],
        env=env,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    stack.callback(stop)
    return settings, url


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when dev dies, even by SIGKILL (Linux prctl)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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
    settings: Settings,
    *,
    load_demo: bool,
    ui_url: str | None,
    ui_codec_secret: str | None,
    archive_url: str | None,
) -> None:
    from demo import seed_demo
    from demo.archive import seed_demo_archive
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
        if demo and archive_url is not None:
            archive = await create_pool(archive_url, max_size=2)
            try:
                await seed_demo_archive(pool, archive, demo)
            finally:
                await archive.close()
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
            _banner(settings, ui_url, demo, archive=archive_url is not None)
            try:
                await server.serve()
            finally:
                stop_relay.set()
                if relay is not None and relaying is not None:
                    await relaying
                    await relay.aclose()
    finally:
        await pool.close()


def _banner(settings: Settings, ui_url: str | None, demo: dict[str, str], *, archive: bool) -> None:
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
        f"  products file      {settings.products_file}",
        "",
    ]
    if archive:
        lines.insert(-1, "  product workers    archive (account-deletion product-worker archive)")
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
