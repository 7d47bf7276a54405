"""`POST /v1/products/{product}/deletions/{deletion_id}/callback`: an `http` product's result.

No bearer token: the product signs the callback the Standard Webhooks way with its secret
(PRODUCTS_FILE), and that signature is the credential. A forged or stale callback (timestamp
more than five minutes off) is refused 401, a replayed `webhook-id` 409, and neither changes
anything. An accepted result is recorded in PostgreSQL first, with its id, in one transaction;
then the purge activity waiting for it is completed (or failed) with the task token sealed in
that row. If the activity already timed out (the worker's poller took over), the recorded
result is what the poller finds. The token and the secret never reach a log or an answer.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from standardwebhooks import Webhook, WebhookVerificationError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from contract.errors import PRODUCT_PURGE_FAILED
from contract.models import ProductDriver
from contract.names import PLAIN_TEXT_PATTERN, PRODUCT_NAME_PATTERN
from core.codec import CodecError, EncryptionCodec, unseal
from registry.catalog import Catalog
from service.api.deps import Pool, Temporal
from service.api.problems import PROBLEMS, problem
from store.http_products import HttpResult, record_result, remember_callback, requested

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/products", tags=["products"])

DELETION_ID_PATTERN = r"^account-deletion-[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class CallbackBody(BaseModel):
    """What the product reports: `completed` with the rows it removed, or `failed`."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["completed", "failed"]
    rows: int | None = Field(default=None, ge=0, le=2**62)
    reason: str | None = Field(default=None, max_length=500, pattern=PLAIN_TEXT_PATTERN)
    deletion_id: str | None = None
    """Optional; when given it must be the path's (a callback is bound to its deletion)."""

    @model_validator(mode="after")
    def _shaped(self) -> "CallbackBody":
        if self.status == "completed" and self.rows is None:
            raise ValueError("a completed callback says how many rows it removed (rows)")
        if self.status == "failed" and self.rows is not None:
            raise ValueError("a failed callback has no rows")
        return self


class CallbackRecorded(BaseModel):
    recorded: bool
    """False when this result was recorded before (an earlier callback or the poller)."""
    status: str


class _Refused(Exception):
    def __init__(self, status_code: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.answer = problem(status_code, error, detail)


@router.post(
    "/{product}/deletions/{deletion_id}/callback",
    response_model=CallbackRecorded,
    responses={
        401: {**PROBLEMS[401], "description": "signature missing, wrong or stale"},
        404: {**PROBLEMS[404], "description": "no such http product, or no such request"},
        409: {**PROBLEMS[409], "description": "a replayed callback, or a contrary result"},
        422: PROBLEMS[422],
    },
)
async def product_callback(
    product: Annotated[str, Path(pattern=PRODUCT_NAME_PATTERN)],
    deletion_id: Annotated[str, Path(pattern=DELETION_ID_PATTERN)],
    request: Request,
    pool: Pool,
    client: Temporal,
) -> Response:
    """Records the product's result for this deletion and completes the purge waiting on it."""
    catalog: Catalog = request.app.state.catalog
    declared = catalog.declared_product(product)
    if declared is None or declared.driver is not ProductDriver.HTTP or not declared.secret:
        return problem(404, "product_not_found", f"no http product named {product}")
    raw = await request.body()
    try:
        Webhook(declared.secret).verify(raw, dict(request.headers), json_parse=False)
    except (WebhookVerificationError, ValueError) as error:
        detail = str(error) if isinstance(error, WebhookVerificationError) else "malformed"
        return problem(401, "invalid_signature", f"the callback's signature: {detail}")
    webhook_id = request.headers["webhook-id"]
    if len(webhook_id) > 255:
        return problem(422, "invalid_request", "webhook-id is longer than 255 characters")
    try:
        body = CallbackBody.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_input=False)]
        ) from None
    if body.deletion_id not in (None, deletion_id):
        return problem(422, "invalid_request", "body.deletion_id is not the path's deletion")
    try:
        result, fresh, token = await _record(pool, product, deletion_id, webhook_id, body)
    except _Refused as refused:
        return refused.answer
    if token is not None:
        await _complete(request.app.state.token_codec, client, product, result, token)
    answer = CallbackRecorded(recorded=fresh, status=result.status)
    return Response(answer.model_dump_json(), media_type="application/json")


async def _record(
    pool: Pool, product: str, deletion_id: str, webhook_id: str, body: CallbackBody
) -> tuple[HttpResult, bool, bytes | None]:
    """In one transaction: the request must exist, the id must be new, and a result already
    recorded must agree (a contrary one is refused, changing nothing)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await requested(conn, deletion_id, product):
            raise _Refused(404, "deletion_not_found", f"{product} has no request of this deletion")
        if not await remember_callback(conn, product, webhook_id):
            raise _Refused(409, "callback_replayed", "this webhook-id was received before")
        result, fresh, token = await record_result(
            conn, deletion_id, product, status=body.status, rows=body.rows, reason=body.reason
        )
        if result.status != body.status:
            raise _Refused(
                409,
                "result_already_recorded",
                f"{product} already reported this deletion {result.status}",
            )
    return result, fresh, token


async def _complete(
    codec: EncryptionCodec, client: Temporal, product: str, result: HttpResult, sealed: bytes
) -> None:
    """Completes (or fails) the purge activity awaiting this result. Any failure here is
    logged by kind and left to the poller, which reads the recorded result."""
    try:
        handle = client.get_async_activity_handle(task_token=unseal(codec, sealed))
        if result.completed:
            await handle.complete(result.receipt(product))
        else:
            await handle.fail(
                ApplicationError(
                    f"{product} failed to purge: {result.reason or 'no reason given'}",
                    type=PRODUCT_PURGE_FAILED,
                    non_retryable=True,
                )
            )
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            logger.info(
                "%s: the purge no longer awaits this callback; its poller reads it", product
            )
        else:
            logger.warning(
                "%s: completing the purge failed (%s); its poller reads the result",
                product,
                error.status.name,
            )
    except CodecError as error:
        logger.warning("%s: the task token cannot be unsealed (%s)", product, type(error).__name__)
