"""Probes and metrics for operators: /healthz, /readyz and /metrics (not in the OpenAPI
document: they are for the platform, not the console backend).

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from service.api.deps import Metrics, Pool, Temporal, require_metrics_token
from service.api.problems import RETRY_AFTER_SECONDS, problem

router = APIRouter(include_in_schema=False)


@router.get("/metrics", dependencies=[Depends(require_metrics_token)])
async def metrics_endpoint(metrics: Metrics) -> Response:
    """Request counts and latencies by route template and status, and process metrics:
    no ids, no PII. Open like /healthz unless METRICS_TOKEN is set."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(pool: Pool, client: Temporal) -> JSONResponse:
    """Ready when PostgreSQL and Temporal both answer; a 503 problem names what does not."""
    checks = {"postgres": "ok", "temporal": "ok"}
    try:
        async with asyncio.timeout(3):
            await pool.fetchval("select 1")
    except Exception as error:  # any failure means not ready; the kind is reported
        checks["postgres"] = f"unavailable ({type(error).__name__})"
    try:
        async with asyncio.timeout(3):
            healthy = await client.service_client.check_health()
        if not healthy:
            checks["temporal"] = "unavailable (not serving)"
    except Exception as error:
        checks["temporal"] = f"unavailable ({type(error).__name__})"
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"ready": True, **checks})
    down = ", ".join(name for name, value in checks.items() if value != "ok")
    return problem(
        503,
        "not_ready",
        f"not ready: {down} cannot be reached",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
        ready=False,
        **checks,
    )
