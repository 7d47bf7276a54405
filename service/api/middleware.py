"""The app's middleware: request bodies limited in size, every request counted, and any error
a route did not expect answered as a problem without its message.

`add_middleware` adds them in the one order that works: the counter outermost (so it also
counts the 413s and 500s), then the catch-all, then the Content-Length check, then the count of
a body as it arrives.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

from core.observability import RequestMetrics, route_template
from service.api.codec_access import CODEC_PATH
from service.api.problems import RETRY_AFTER_SECONDS, problem

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_CODEC_BODY_BYTES = 4 * 1024 * 1024
"""The codec server receives whole histories' payloads (receipts can be large)."""


def body_limit(path: str) -> int:
    return MAX_CODEC_BODY_BYTES if path.startswith(f"{CODEC_PATH}/") else MAX_BODY_BYTES


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


class CountedBody:
    """Wraps the ASGI `receive` of a request: past the route's limit, the body read fails
    with 413 (FastAPI passes HTTP exceptions raised while reading a body through)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        received = 0
        limit = body_limit(scope["path"])

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self._app(scope, counted, send)


async def limit_body(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    limit = body_limit(request.url.path)
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return problem(413, "body_too_large", BodyTooLarge(limit).detail)
    # A body without Content-Length (chunked) is counted as it arrives (CountedBody).
    return await call_next(request)


async def count_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Labels by the route template the router will pick, found before the call: a request
    refused by the body limit is counted under its route too."""
    routes: list[BaseRoute] = request.app.state.routes
    metrics: RequestMetrics = request.app.state.metrics
    route = route_template(routes, request.scope)
    started = time.perf_counter()
    status_code = 500
    try:
        response = await call_next(request)
        status_code = response.status_code
        return response
    finally:
        metrics.observe(request.method, route, status_code, time.perf_counter() - started)


UNREACHABLE_TEMPORAL = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}


async def catch_unhandled(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """An error no route expected: a 503 with `Retry-After` when PostgreSQL or Temporal cannot
    be reached, a 500 otherwise. Logged by its type, route and stack frames, never its message
    (a pydantic error quotes the input: a code, an email) nor the path (a page link is a
    credential); nothing is raised on to the server, which would log it whole."""
    try:
        return await call_next(request)
    except Exception as error:
        routes: list[BaseRoute] = request.app.state.routes
        route = route_template(routes, request.scope)
        frames = "".join(traceback.format_tb(error.__traceback__))
        logger.error(
            "unhandled %s in %s %s\n%s", type(error).__name__, request.method, route, frames
        )
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if isinstance(error, RPCError) and error.status in UNREACHABLE_TEMPORAL:
            return problem(503, "temporal_unavailable", "Temporal cannot be reached", retry)
        if isinstance(error, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
            return problem(503, "database_unavailable", "PostgreSQL cannot be reached", retry)
        return problem(500, "internal_error", "the request failed; it is logged for operators")


def add_middleware(app: FastAPI) -> None:
    app.add_middleware(CountedBody)
    app.add_middleware(BaseHTTPMiddleware, dispatch=limit_body)
    app.add_middleware(BaseHTTPMiddleware, dispatch=catch_unhandled)
    # Added last, so it is the outer one and also counts the 413s and 500s.
    app.add_middleware(BaseHTTPMiddleware, dispatch=count_requests)


class TracedRequests:
    """A span per HTTP request, current while the route runs, so that the Temporal client's
    tracing interceptor continues the trace into the workflow (added when tracing is on). Named
    and labelled by the route's template and the status, never the raw path or a query."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        from opentelemetry import trace

        route = route_template(scope["app"].state.routes, scope)
        tracer = trace.get_tracer("account-deletion.api")
        with tracer.start_as_current_span(
            f"{scope['method']} {route}",
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "http.route": route},
        ) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self._app(scope, receive, traced_send)
