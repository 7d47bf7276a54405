"""Builds the app: its state, lifespan, middleware, error handlers and routers.

JSON under /v1 with a bearer token; the OpenAPI document at /openapi.json (docs at /docs).
The verification page under /verify/{link} needs no token: the signed link is the credential.
The routes themselves are in `service.api.routes`, one module per resource.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
from fastapi import FastAPI
from temporalio.client import Client

from contract.models import ProductDriver
from core.codec import codec_for
from core.config import ConfigurationError, Settings
from core.observability import RequestMetrics
from core.tracing import tracing_enabled
from registry.catalog import load_catalog
from service.api.codec_access import CodecAccess
from service.api.links import LinkSigner
from service.api.middleware import TracedRequests, add_middleware
from service.api.problems import EXCEPTION_HANDLERS
from service.api.routes import (
    accounts,
    codec,
    deletion_list,
    deletions,
    health,
    product_callbacks,
    verification_page,
)

ROUTERS = (
    health.router,
    accounts.router,
    deletions.router,
    deletion_list.router,
    verification_page.router,
    codec.router,
    product_callbacks.router,
)
"""In the order the app tries them (their paths do not overlap)."""


def create_app(
    settings: Settings,
    *,
    pool: asyncpg.Pool | None = None,
    client: Client | None = None,
    ui_codec_secret: str | None = None,
) -> FastAPI:
    """The app; given a pool and client it uses them, otherwise it opens its own at start-up.

    `ui_codec_secret` is `dev`'s alone: the secret in its embedded UI's codec endpoint path
    (never read from the environment, see service.api.codec_access).
    """
    if not settings.api_token:
        raise ConfigurationError("API_TOKEN is not set: the API refuses to run without a token")
    signer = LinkSigner(settings.link_secret())
    codec_access = CodecAccess(settings, ui_secret=ui_codec_secret)
    app = FastAPI(
        title="account-deletion",
        version="1",
        description=(
            "Durable, verifiable deletion of cloud customer accounts. Start a deletion, show "
            "its pending tasks and progress, pass on the user's code, retry or cancel."
        ),
        lifespan=_lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        # FastAPI's own OpenTelemetry spans, metrics and logs record the raw path (a
        # verification link is a credential) and exception messages (they may quote a code or
        # an email): off. `TracedRequests` traces by route template instead.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.signer = signer
    app.state.codec_access = codec_access
    app.state.metrics = RequestMetrics()
    app.state.pool, app.state.client = pool, client
    # `http` products' callbacks: their secrets, and the key that unseals task tokens.
    app.state.catalog = catalog = load_catalog(settings.products_file)
    app.state.token_codec = codec_for(settings) if catalog.of_driver(ProductDriver.HTTP) else None
    add_middleware(app)
    if tracing_enabled(settings):
        app.add_middleware(TracedRequests)  # the outermost: the request's span holds the rest
    # The request metrics label a request by the route the router will pick; FastAPI keeps an
    # included router as one entry of `app.routes`, so they get every route, in order.
    routes = list(app.routes)
    for router in ROUTERS:
        app.include_router(router)
        routes.extend(router.routes)
    app.state.routes = routes
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Uses the pool and client `create_app` was given, or opens its own for the app's life."""
    if app.state.pool is not None and app.state.client is not None:
        yield
        return
    async with _services(app.state.settings) as (own_pool, own_client):
        app.state.pool, app.state.client = own_pool, own_client
        yield


@asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, Client]]:
    from starter.client import connect
    from store.db import create_pool

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    async with AsyncExitStack() as stack:
        pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
        stack.push_async_callback(pool.close)
        yield pool, await connect(settings)
