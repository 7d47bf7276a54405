"""Every error answer in one shape: an RFC 9457 problem, `application/problem+json`.

`type` (a URI reference naming the kind of problem, `/problems/<error>`), `title` (the kind, for
a person), `status`, `detail` (this occurrence, for a person), and two extension members: `error`,
the stable code a client branches on (the same codes as before problem details), and, for a
422 on fields, `errors`: `[{"field", "message"}]`. No answer repeats a submitted value (a code,
a token, an email): validation errors name the field and the rule only. 429 and 503 carry
`Retry-After` (seconds).

The tables say which status each error gets; `EXCEPTION_HANDLERS` turns what routes raise (and
Starlette's own 404, 405 and 413) into problems; `middleware.catch_unhandled` answers anything
else with a 500 (or a 503 when PostgreSQL or Temporal cannot be reached).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from accounts.registration import IdentifierTaken
from starter.errors import (
    AccountAlreadyDeleted,
    AccountNotFound,
    ActionNotAllowed,
    DeletionError,
    DeletionNotFound,
    InvalidCursor,
    NoCodesLeft,
    ProductNotFound,
    TooSoon,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    field: str
    """Where: `body.code`, `path.account_id`, `header.idempotency-key`."""
    message: str
    """Which rule the value broke (never the value)."""


class Problem(BaseModel):
    """Every error answer (RFC 9457 problem details)."""

    type: str = Field(examples=["/problems/action_not_allowed"])
    """A URI reference naming the kind of problem: `/problems/<error>`."""
    title: str = Field(examples=["The action does not fit the deletion's stage"])
    status: int = Field(examples=[409])
    detail: str = Field(examples=["cannot retry the failed purges in stage AWAITING_VERIFICATION"])
    error: str = Field(examples=["action_not_allowed"])
    """The stable code a client branches on."""
    errors: list[FieldProblem] | None = None
    """For `invalid_request`: each field and the rule it broke."""


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class Unauthorized(Exception):
    """A bearer token is missing or wrong: answered 401 with `WWW-Authenticate: Bearer`."""


class InvalidIdempotencyKey(Exception):
    """The `Idempotency-Key` header is malformed, or came before with another request."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


DELETION_ERRORS: dict[type[Exception], int] = {
    AccountNotFound: status.HTTP_404_NOT_FOUND,
    DeletionNotFound: status.HTTP_404_NOT_FOUND,
    ProductNotFound: status.HTTP_404_NOT_FOUND,
    AccountAlreadyDeleted: status.HTTP_409_CONFLICT,
    ActionNotAllowed: status.HTTP_409_CONFLICT,
    NoCodesLeft: status.HTTP_409_CONFLICT,
    TooSoon: status.HTTP_429_TOO_MANY_REQUESTS,
    InvalidCursor: status.HTTP_422_UNPROCESSABLE_CONTENT,
}
"""The status of each `DeletionError`; any other is a 400."""

TITLES = {
    "unauthorized": "A valid bearer token is required",
    "account_not_found": "No such account",
    "deletion_not_found": "No such deletion",
    "product_not_found": "No such product",
    "account_deleted": "The account is already deleted",
    "action_not_allowed": "The action does not fit the deletion's stage",
    "codes_exhausted": "No more codes can be sent for this deletion",
    "rate_limited": "Too soon: try again later",
    "identifier_taken": "An identifier is held by another account",
    "invalid_request": "The request is not valid",
    "invalid_idempotency_key": "The Idempotency-Key header is not valid",
    "invalid_cursor": "The list cursor is not valid",
    "idempotency_key_reused": "The Idempotency-Key was used for another request",
    "idempotency_key_in_use": "A request with this Idempotency-Key is still being handled",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "body_too_large": "The request body is too large",
    "internal_error": "Internal error",
    "database_unavailable": "PostgreSQL cannot be reached",
    "temporal_unavailable": "Temporal cannot be reached",
    "not_ready": "Not ready",
    "invalid_signature": "The callback's signature does not verify",
    "callback_replayed": "This callback was received before",
    "result_already_recorded": "The product reported another result before",
}

RETRY_AFTER_SECONDS = 5
"""What a 503 asks a client to wait before trying again."""

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    404: {"model": Problem, "description": "unknown account, or no deletion for it"},
    409: {"model": Problem, "description": "the action does not fit the deletion's stage"},
    422: {
        "model": Problem,
        "description": "malformed input (`errors` names each field), or a malformed or reused "
        "Idempotency-Key",
    },
    503: {
        "model": Problem,
        "description": "PostgreSQL or Temporal cannot be reached: retry after `Retry-After`",
    },
}
"""The error answers every /v1 route documents in the OpenAPI document (problem+json)."""
for _answer in PROBLEMS.values():
    _answer["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}

HTTP_ERRORS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}
HTTP_MESSAGES = {
    # The path is not repeated: a verification link's token is part of it.
    404: "not found: no such endpoint (the API is described at /docs)",
    405: "method not allowed",
}


def problem(
    status_code: int,
    error: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """The problem answer: `error` is the stable code, `detail` the words for a person."""
    title = TITLES.get(error) or HTTPStatus(status_code).phrase
    body = Problem(
        type=f"/problems/{error}", title=title, status=status_code, detail=detail, error=error
    ).model_dump(exclude_none=True)
    return ProblemResponse({**body, **extensions}, status_code=status_code, headers=headers)


async def unauthorized(request: Request, error: Unauthorized) -> Response:
    response = problem(401, "unauthorized", "a valid bearer token is required")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def http_error(request: Request, error: StarletteHTTPException) -> Response:
    """Unknown routes, wrong methods, bodies too large: the same problem body as the rest."""
    code = HTTP_ERRORS.get(error.status_code, "http_error")
    message = HTTP_MESSAGES.get(error.status_code, str(error.detail))
    if error.status_code == 405 and error.headers and "Allow" in error.headers:
        message += f": this endpoint takes {error.headers['Allow']}"
    response = problem(error.status_code, code, message)
    response.headers.update(error.headers or {})
    return response


async def deletion_error(request: Request, error: DeletionError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, TooSoon) else None
    return problem(DELETION_ERRORS.get(type(error), 400), error.code, str(error), headers)


async def invalid_request(request: Request, error: RequestValidationError) -> Response:
    # Says which field and why, never echoing the value (pydantic's `input`, and its `ctx`,
    # which may quote it): it may be a code, email or phone.
    fields = [
        FieldProblem(field=".".join(str(part) for part in item["loc"]), message=item["msg"])
        for item in error.errors()
    ]
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields)
    return problem(422, "invalid_request", summary, errors=[field.model_dump() for field in fields])


async def invalid_idempotency_key(request: Request, error: InvalidIdempotencyKey) -> Response:
    return problem(
        409 if error.error == "idempotency_key_in_use" else 422, error.error, error.detail
    )


async def identifier_taken(request: Request, error: IdentifierTaken) -> Response:
    return problem(409, "identifier_taken", str(error))


EXCEPTION_HANDLERS: dict[
    int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]
] = {
    Unauthorized: unauthorized,
    StarletteHTTPException: http_error,
    DeletionError: deletion_error,
    RequestValidationError: invalid_request,
    InvalidIdempotencyKey: invalid_idempotency_key,
    IdentifierTaken: identifier_taken,
}
"""For `FastAPI(exception_handlers=...)`: each exception class answered as a problem."""
