"""The worker: runs AccountDeletion and its activities on the task queue until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import py_compile
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.account import AccountActivities
from activities.cooling_off import CoolingOffActivities
from activities.http_products import HttpProductActivities
from activities.notify import LogNotifier, NotificationActivities, Notifier, WebhookNotifier
from activities.prerequisites import PrerequisiteActivities
from activities.purge import PurgeActivities
from activities.verification import VerificationActivities
from contract.models import ProductDriver
from core.code_hash import CodeHasher, code_hasher_for
from core.codec import codec_for
from core.config import ConfigurationError, Settings, load_settings
from core.webhooks import SignedClient, webhook_signer
from registry.catalog import Catalog, load_catalog
from store.event_relay import EventRelay
from workflows.account_deletion import AccountDeletion

logger = logging.getLogger(__name__)


WEBHOOK_SETTINGS = "NOTIFIER=webhook with NOTIFY_WEBHOOK_URL and NOTIFY_WEBHOOK_SECRET"


def make_notifier(settings: Settings, *, allow_log: bool = False) -> Notifier:
    """The webhook notifier; the log notifier (the default) only when `allow_log`, which only
    `dev` passes: it writes every verification code to the process's log."""
    if settings.notifier == "webhook":
        if not settings.notify_webhook_url:
            raise ConfigurationError("NOTIFIER=webhook needs NOTIFY_WEBHOOK_URL")
        secret = settings.notify_webhook_secret
        if secret is None:
            logger.warning("NOTIFY_WEBHOOK_SECRET is not set: requests to the gateway are unsigned")
        return WebhookNotifier(
            settings.notify_webhook_url,
            secret=None if secret is None else secret.get_secret_value(),
        )
    if not allow_log:
        if settings.notifier is None:
            raise ConfigurationError(f"NOTIFIER is not set: set {WEBHOOK_SETTINGS}")
        raise ConfigurationError(
            f"NOTIFIER=log writes verification codes to the log and serves `dev` only: set"
            f" {WEBHOOK_SETTINGS}"
        )
    return LogNotifier()


def events_secret(settings: Settings) -> str | None:
    """EVENTS_WEBHOOK_SECRET, checked, when EVENTS_WEBHOOK_URL is set (which requires it)."""
    if not settings.events_webhook_url:
        return None
    if settings.events_webhook_secret is None:
        raise ConfigurationError("EVENTS_WEBHOOK_URL needs EVENTS_WEBHOOK_SECRET (whsec_...)")
    secret = settings.events_webhook_secret.get_secret_value()
    webhook_signer(secret, "EVENTS_WEBHOOK_SECRET")
    return secret


def event_relay(settings: Settings, pool: asyncpg.Pool) -> EventRelay | None:
    """The relay of stage events to the console backend, when EVENTS_WEBHOOK_URL is set. It
    runs in the worker process, beside the activities that log the changes: no process more to
    deploy, and every worker may run one (they share the outbox safely)."""
    secret = events_secret(settings)
    if secret is None or not settings.events_webhook_url:
        return None
    return EventRelay(pool, settings.events_webhook_url, secret)


def activities_for(
    pool: asyncpg.Pool,
    notifier: Notifier,
    hasher: CodeHasher,
    catalog: Catalog | None = None,
    *,
    purge_batch_size: int = 5000,
    purge_batch_budget: timedelta | None = None,
    http_products: HttpProductActivities | None = None,
) -> Sequence[Any]:
    """Every activity of the product, bound to this process's pool, notifier, code hasher and
    product catalog (the built-in products alone when none is given); `http_products` (its
    signed client, public address and codec) when the catalog declares `http` products."""
    catalog = catalog or Catalog()
    if catalog.of_driver(ProductDriver.HTTP) and http_products is None:
        raise ValueError("the catalog declares http products: pass their activities")
    purge = PurgeActivities(
        pool, catalog, batch_size=purge_batch_size, batch_budget=purge_batch_budget
    )
    account = AccountActivities(pool, purge, catalog)
    verification = VerificationActivities(pool, notifier, hasher)
    signed = http_products.client if http_products else None
    http = (
        [http_products.request_http_purge, http_products.poll_http_purge] if http_products else []
    )
    return [
        *http,
        PrerequisiteActivities(pool, catalog, signed).check_prerequisites,
        verification.issue_verification_code,
        verification.check_verification_code,
        account.record_progress,
        account.freeze_account,
        account.unfreeze_account,
        account.release_identifiers,
        account.finalize_deletion,
        purge.list_products,
        purge.plan_products,
        purge.purge_product,
        purge.record_product_purge,
        NotificationActivities(pool, notifier).deliver_notification,
        CoolingOffActivities(pool).record_cooling_off_notice,
    ]


def product_http_client() -> httpx.AsyncClient:
    """The client of `http` products' APIs: short timeouts, a retry is the activity's."""
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0))


def cache_bytecode(*workflow_classes: type) -> None:
    """Writes the bytecode of the modules that define the given workflows.

    The workflow sandbox imports a workflow's module afresh for every run it starts or replays.
    Where the interpreter writes no bytecode (PYTHONDONTWRITEBYTECODE, usual in containers),
    each of those imports compiled the source again: an eighth of the worker's CPU while runs
    start. Read-only sources (the image compiles them when it is built) are left as they are.
    """
    for workflow_class in workflow_classes:
        source = getattr(sys.modules[workflow_class.__module__], "__file__", None)
        if source is None:
            continue
        try:
            py_compile.compile(source, doraise=True)
        except (OSError, py_compile.PyCompileError) as error:
            logger.debug("bytecode of %s not cached: %s", source, error)


def http_products_for(
    pool: asyncpg.Pool, catalog: Catalog, settings: Settings, http: httpx.AsyncClient | None
) -> HttpProductActivities | None:
    """The `http` driver's activities when the catalog declares `http` products: requests
    signed with each product's secret, callbacks to PUBLIC_BASE_URL, task tokens sealed with
    PAYLOAD_KEYS."""
    if not catalog.of_driver(ProductDriver.HTTP):
        return None
    client = SignedClient(http or product_http_client())
    return HttpProductActivities(pool, catalog, client, settings.base_url(), codec_for(settings))


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    notifier: Notifier,
    settings: Settings,
    http: httpx.AsyncClient | None = None,
) -> Worker:
    """The worker on the settings' task queue; CODE_HASH_KEY must be set and PRODUCTS_FILE, when
    set, must hold together (ConfigurationError). `http` reaches `http` products (the caller
    closes it; one of the worker's own when not given)."""
    cache_bytecode(AccountDeletion)
    hasher = code_hasher_for(settings)
    catalog = load_catalog(settings.products_file)
    http_products = http_products_for(pool, catalog, settings, http)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[AccountDeletion],
        activities=activities_for(
            pool,
            notifier,
            hasher,
            catalog,
            purge_batch_size=settings.purge_batch_size,
            purge_batch_budget=settings.purge_batch_budget,
            http_products=http_products,
        ),
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_local_activities=settings.worker_max_concurrent_activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Runs until `stop` is set, or SIGTERM/SIGINT when no event is given.

    Refuses (ConfigurationError, before it connects to anything) without DATABASE_URL,
    CODE_HASH_KEY or the webhook notifier: the log notifier is `dev`'s alone.
    The SDK runtime is made once per process: it serves the SDK's Prometheus metrics on
    WORKER_METRICS_ADDRESS and forwards Core's log lines to Python logging.
    """
    from core.observability import metrics_bind_address, sdk_runtime
    from starter.client import connect
    from store.db import create_pool

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set (`dev` sets it for its own stack)")
    code_hasher_for(settings)
    load_catalog(settings.products_file)  # refused here, before anything connects
    events_secret(settings)
    async with AsyncExitStack() as stack:
        notifier = make_notifier(settings)
        if isinstance(notifier, WebhookNotifier):
            stack.push_async_callback(notifier.aclose)
        metrics_address = metrics_bind_address(settings)
        runtime = sdk_runtime(metrics_address)
        if metrics_address is not None:
            logger.info("worker metrics at http://%s/metrics", metrics_address)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
        stack.push_async_callback(pool.close)
        client = await connect(settings, runtime)
        http = product_http_client()
        stack.push_async_callback(http.aclose)
        worker = build_worker(client, pool, notifier, settings, http)
        relay = event_relay(settings, pool)
        logger.info("worker polling task queue %s", settings.temporal_task_queue)
        async with worker:
            if relay is not None:
                stack.push_async_callback(relay.aclose)
                relaying = asyncio.create_task(relay.run(stop))
                logger.info("stage events relayed to EVENTS_WEBHOOK_URL")
            await stop.wait()
            logger.info("worker stopping: finishing running activities")
            if relay is not None:
                await relaying
    logger.info("worker stopped")


def main() -> int:
    """`python worker.py`: a setting that is missing or wrong is one line on stderr, exit 2."""
    from core.observability import configure_logging
    from core.tracing import configure_tracing, flush_tracing

    try:
        settings = load_settings()
        configure_logging(settings)
        configure_tracing(settings, "account-deletion-worker")
        asyncio.run(run_worker(settings))
        flush_tracing()
    except ConfigurationError as error:
        # One line, never a traceback: the message names the setting and what to do.
        sys.stderr.write(f"worker: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
