"""The HTTP API for the console backend, and the verification page for the user.

(No `from __future__ import annotations` here: FastAPI reads the annotations of routes
defined inside `create_app`, which refer to its local dependencies.)

JSON under /v1 with a bearer token; the OpenAPI document at /openapi.json (docs at /docs).
The verification page under /verify/{link} needs no token: the signed link is the credential.
"""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from accounts.registration import (
    IdentifierTaken,
    RegisteredAccount,
    RegistrationRequest,
    register_account,
)
from contract.models import CodeCheck, DeletionReceipt, DeletionStatus
from contract.names import ACCOUNT_ID_PATTERN, CODE_PATTERN, PLAIN_TEXT_PATTERN, REQUESTER_PATTERN
from core.config import ConfigurationError, Settings
from core.observability import RequestMetrics, route_template
from service.links import LinkSigner
from starter.client import (
    AccountAlreadyDeleted,
    AccountNotFound,
    ActionNotAllowed,
    DeletionClient,
    DeletionError,
    DeletionNotFound,
    TooSoon,
)

MAX_BODY_BYTES = 16 * 1024
MAX_CODEC_BODY_BYTES = 4 * 1024 * 1024
"""The codec server receives whole histories' payloads (receipts can be large)."""

AccountId = Annotated[
    str,
    Path(pattern=ACCOUNT_ID_PATTERN, description="The account's id, e.g. acct-1f2e3d4c5b6a7988"),
]


class Problem(BaseModel):
    """Every error answer: a stable `error` code and a message a person understands."""

    error: str
    message: str


class DeletionStarted(BaseModel):
    workflow_id: str
    run_id: str
    started: bool
    """False when a deletion was already in progress: this is that deletion."""
    verification_url: str
    """The page where the user enters the code; signed, expiring, bound to this run."""


class Accepted(BaseModel):
    accepted: bool = True
    detail: str


class CodeSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=CODE_PATTERN, examples=["123456"])


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500, pattern=PLAIN_TEXT_PATTERN)


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requested_by: str = Field(default="console", max_length=200, pattern=REQUESTER_PATTERN)
    """The console user or operator id asking (shown to operators; not an email)."""


_ERRORS: dict[type[Exception], int] = {
    AccountNotFound: status.HTTP_404_NOT_FOUND,
    DeletionNotFound: status.HTTP_404_NOT_FOUND,
    AccountAlreadyDeleted: status.HTTP_409_CONFLICT,
    ActionNotAllowed: status.HTTP_409_CONFLICT,
    TooSoon: status.HTTP_429_TOO_MANY_REQUESTS,
}

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    404: {"model": Problem, "description": "unknown account, or no deletion for it"},
    409: {"model": Problem, "description": "the action does not fit the deletion's stage"},
}


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


def create_app(
    settings: Settings, *, pool: asyncpg.Pool | None = None, client: Client | None = None
) -> FastAPI:
    """The app; given a pool and client it uses them, otherwise it opens its own at start-up."""
    if not settings.api_token:
        raise ConfigurationError("API_TOKEN is not set: the API refuses to run without a token")
    token = settings.api_token.encode()
    signer = LinkSigner(settings.link_secret())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pool is not None and client is not None:
            app.state.pool, app.state.client = pool, client
            yield
            return
        async with _services(settings) as (own_pool, own_client):
            app.state.pool, app.state.client = own_pool, own_client
            yield

    app = FastAPI(
        title="account-deletion",
        version="1",
        description=(
            "Durable, verifiable deletion of cloud customer accounts. Start a deletion, show "
            "its pending tasks and progress, pass on the user's code, retry or cancel."
        ),
        lifespan=lifespan,
    )
    app.add_middleware(_CountedBody)
    bearer = HTTPBearer(auto_error=False)

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), token
        ):
            raise _Unauthorized()

    def deletions(request: Request) -> DeletionClient:
        return DeletionClient(
            request.app.state.client, request.app.state.pool, settings.temporal_task_queue
        )

    Deletions = Annotated[DeletionClient, Depends(deletions)]
    secured = [Depends(authorized)]

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        limit = _body_limit(request.url.path)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _problem(413, "body_too_large", BodyTooLarge(limit).detail)
        # A body without Content-Length (chunked) is counted as it arrives (_CountedBody).
        return await call_next(request)

    metrics = RequestMetrics()
    metrics_token = (
        settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None
    )

    # Added after the body limit, so it is the outer one and also counts the 413s.
    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        route = route_template(app.router.routes, request.scope)
        started = time.perf_counter()
        status_code = 500
        try:
            response = await call_next(request)
            status_code = response.status_code
            return response
        finally:
            metrics.observe(request.method, route, status_code, time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Response:
        """Request counts and latencies by route template and status, and process metrics:
        no ids, no PII. Open like /healthz unless METRICS_TOKEN is set."""
        if metrics_token is not None and (
            credentials is None
            or not secrets.compare_digest(credentials.credentials.encode(), metrics_token)
        ):
            raise _Unauthorized()
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, error: _Unauthorized) -> Response:
        response = _problem(401, "unauthorized", "a valid bearer token is required")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        """Unknown routes, wrong methods, bodies too large: the same problem body as the rest."""
        code = _HTTP_ERRORS.get(error.status_code, "http_error")
        message = _HTTP_MESSAGES.get(error.status_code, str(error.detail))
        if error.status_code == 405 and error.headers and "Allow" in error.headers:
            message += f": this endpoint takes {error.headers['Allow']}"
        response = _problem(error.status_code, code, message)
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(DeletionError)
    async def deletion_error(request: Request, error: DeletionError) -> Response:
        return _problem(_ERRORS.get(type(error), 400), error.code, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        # Says which field and why, never echoing the value: it may be a code, email or phone.
        fields = [
            {"field": ".".join(str(part) for part in problem["loc"]), "message": problem["msg"]}
            for problem in error.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return JSONResponse(
            {"error": "invalid_request", "message": summary, "fields": fields}, status_code=422
        )

    @app.exception_handler(IdentifierTaken)
    async def identifier_taken(request: Request, error: IdentifierTaken) -> Response:
        response = _problem(409, "identifier_taken", str(error))
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Ready when PostgreSQL and Temporal both answer; 503 names what does not."""
        checks = {"postgres": "ok", "temporal": "ok"}
        try:
            async with asyncio.timeout(3):
                await request.app.state.pool.fetchval("select 1")
        except Exception as error:  # any failure means not ready; the kind is reported
            checks["postgres"] = f"unavailable ({type(error).__name__})"
        try:
            async with asyncio.timeout(3):
                healthy = await request.app.state.client.service_client.check_health()
            if not healthy:
                checks["temporal"] = "unavailable (not serving)"
        except Exception as error:
            checks["temporal"] = f"unavailable ({type(error).__name__})"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.post(
        "/v1/accounts",
        status_code=201,
        dependencies=secured,
        responses={**_PROBLEMS, 409: {"model": Problem, "description": "an identifier is taken"}},
        tags=["accounts"],
    )
    async def register(body: RegistrationRequest, request: Request) -> RegisteredAccount:
        """Registers an account; 409 while any of its identifiers is held by another account."""
        return await register_account(request.app.state.pool, body)

    @app.post(
        "/v1/accounts/{account_id}/deletion",
        status_code=202,
        dependencies=secured,
        responses=_PROBLEMS,
        tags=["deletion"],
    )
    async def start(
        account_id: AccountId, deletions: Deletions, body: StartRequest | None = None
    ) -> DeletionStarted:
        """Starts the deletion, or returns the one in progress (idempotent)."""
        started = await deletions.start(
            account_id, requested_by=(body or StartRequest()).requested_by
        )
        link = signer.sign(account_id, started.run_id)
        return DeletionStarted(
            workflow_id=started.workflow_id,
            run_id=started.run_id,
            started=started.started,
            verification_url=f"{settings.base_url()}/verify/{link}",
        )

    @app.get(
        "/v1/accounts/{account_id}/deletion",
        dependencies=secured,
        responses=_PROBLEMS,
        tags=["deletion"],
    )
    async def get_status(account_id: AccountId, deletions: Deletions) -> DeletionStatus:
        """Stage, pending tasks (what to finish first), per-product purge progress."""
        return await deletions.status(account_id)

    @app.get(
        "/v1/accounts/{account_id}/deletion/receipt",
        dependencies=secured,
        responses=_PROBLEMS,
        tags=["deletion"],
    )
    async def get_receipt(account_id: AccountId, deletions: Deletions) -> DeletionReceipt:
        """The receipt of a finished deletion: what each product purged, and when."""
        return await deletions.receipt(account_id)

    @app.post(
        "/v1/accounts/{account_id}/deletion/verification",
        dependencies=secured,
        responses=_PROBLEMS,
        tags=["deletion"],
    )
    async def submit_code(
        account_id: AccountId, body: CodeSubmission, deletions: Deletions
    ) -> CodeCheck:
        """Checks the user's code: `accepted`, `wrong` (with attempts left), `expired` (ask
        for a new code) or `locked` (too many wrong attempts: ask for a new code)."""
        return await deletions.verify(account_id, body.code)

    @app.post(
        "/v1/accounts/{account_id}/deletion/recheck",
        status_code=202,
        dependencies=secured,
        responses=_PROBLEMS,
        tags=["deletion"],
    )
    async def recheck(account_id: AccountId, deletions: Deletions) -> Accepted:
        """Checks the pending tasks again now instead of at the next periodic check."""
        await deletions.recheck(account_id)
        return Accepted(detail="pending tasks will be checked again")

    @app.post(
        "/v1/accounts/{account_id}/deletion/resend-code",
        status_code=202,
        dependencies=secured,
        responses={
            **_PROBLEMS,
            429: {"model": Problem, "description": "too soon, or no codes left"},
        },
        tags=["deletion"],
    )
    async def resend(account_id: AccountId, deletions: Deletions) -> Accepted:
        """Sends a new code; the previous one stops working."""
        await deletions.resend_code(account_id)
        return Accepted(detail="a new code is on its way")

    @app.post(
        "/v1/accounts/{account_id}/deletion/retry",
        status_code=202,
        dependencies=secured,
        responses=_PROBLEMS,
        tags=["deletion"],
    )
    async def retry(account_id: AccountId, deletions: Deletions) -> Accepted:
        """Retries the products whose purge failed (only those)."""
        await deletions.retry(account_id)
        return Accepted(detail="the failed purges will be retried")

    @app.post(
        "/v1/accounts/{account_id}/deletion/cancel",
        status_code=202,
        dependencies=secured,
        responses=_PROBLEMS,
        tags=["deletion"],
    )
    async def cancel(
        account_id: AccountId, deletions: Deletions, body: CancelRequest | None = None
    ) -> Accepted:
        """Cancels before the point of no return (the first purge); 409 afterwards."""
        await deletions.cancel(account_id, (body or CancelRequest()).reason)
        return Accepted(detail="the deletion will be cancelled")

    from service.codec_server import mount_codec_server
    from service.verification_page import mount_verification_page

    mount_verification_page(app, signer, settings)
    mount_codec_server(app, settings)
    return app


class _Unauthorized(Exception):
    pass


_HTTP_ERRORS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}
_HTTP_MESSAGES = {
    # The path is not repeated: a verification link's token is part of it.
    404: "not found: no such endpoint (the API is described at /docs)",
    405: "method not allowed",
}


def _body_limit(path: str) -> int:
    return MAX_CODEC_BODY_BYTES if path.startswith("/codec/") else MAX_BODY_BYTES


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


class _CountedBody:
    """Wraps the ASGI `receive` of a request: past the route's limit, the body read fails
    with 413 (FastAPI passes HTTP exceptions raised while reading a body through)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        received = 0
        limit = _body_limit(scope["path"])

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self._app(scope, counted, send)


def _problem(status_code: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(Problem(error=error, message=message).model_dump(), status_code=status_code)
