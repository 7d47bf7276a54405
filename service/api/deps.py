"""The dependencies routes share, as `Annotated` aliases.

They read what `create_app` keeps on `app.state` (settings, link signer, metrics, codec
access) and what its lifespan opens (the pool, the Temporal client), so that routes are plain
module-level functions and every app built in one process (as in the tests) has its own.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

import secrets
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from core.config import Settings
from core.observability import RequestMetrics
from service.api.codec_access import CodecAccess
from service.api.idempotency import Idempotency
from service.api.links import LinkSigner
from service.api.problems import Unauthorized
from starter.client import DeletionClient

bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_temporal(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def get_signer(request: Request) -> LinkSigner:
    signer: LinkSigner = request.app.state.signer
    return signer


def get_metrics(request: Request) -> RequestMetrics:
    metrics: RequestMetrics = request.app.state.metrics
    return metrics


def get_codec_access(request: Request) -> CodecAccess:
    access: CodecAccess = request.app.state.codec_access
    return access


SettingsDep = Annotated[Settings, Depends(get_settings)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Temporal = Annotated[Client, Depends(get_temporal)]
Signer = Annotated[LinkSigner, Depends(get_signer)]
Metrics = Annotated[RequestMetrics, Depends(get_metrics)]
CodecAccessDep = Annotated[CodecAccess, Depends(get_codec_access)]


def get_deletions(settings: SettingsDep, pool: Pool, client: Temporal) -> DeletionClient:
    """The one way routes reach deletions: the API and the verification page alike."""
    return DeletionClient(client, pool, settings.temporal_task_queue)


Deletions = Annotated[DeletionClient, Depends(get_deletions)]


def get_idempotency(settings: SettingsDep, pool: Pool) -> Idempotency:
    """The stored answers of POST requests sent with an Idempotency-Key."""
    return Idempotency(pool, settings.link_secret())


IdempotencyStore = Annotated[Idempotency, Depends(get_idempotency)]


def _matches(credentials: HTTPAuthorizationCredentials | None, token: bytes | None) -> bool:
    return (
        credentials is not None
        and token is not None
        and secrets.compare_digest(credentials.credentials.encode(), token)
    )


def require_token(settings: SettingsDep, credentials: Credentials) -> None:
    """The API's bearer token (API_TOKEN): every /v1 route depends on it."""
    token = settings.api_token.encode() if settings.api_token else None
    if not _matches(credentials, token):
        raise Unauthorized()


def require_metrics_token(settings: SettingsDep, credentials: Credentials) -> None:
    """/metrics is open like /healthz unless METRICS_TOKEN is set."""
    if settings.metrics_token and not _matches(
        credentials, settings.metrics_token.get_secret_value().encode()
    ):
        raise Unauthorized()
