"""Every error answer in one shape: `{"error": <stable code>, "message": <for a person>}`.

The tables say which status each error gets; `EXCEPTION_HANDLERS` turns what routes raise
(and Starlette's own 404, 405 and 413) into that shape, so a client parses one body.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from accounts.registration import IdentifierTaken
from starter.client import (
    AccountAlreadyDeleted,
    AccountNotFound,
    ActionNotAllowed,
    DeletionError,
    DeletionNotFound,
    TooSoon,
)


class Problem(BaseModel):
    """Every error answer: a stable `error` code and a message a person understands."""

    error: str
    message: str


class Unauthorized(Exception):
    """A bearer token is missing or wrong: answered 401 with `WWW-Authenticate: Bearer`."""


DELETION_ERRORS: dict[type[Exception], int] = {
    AccountNotFound: status.HTTP_404_NOT_FOUND,
    DeletionNotFound: status.HTTP_404_NOT_FOUND,
    AccountAlreadyDeleted: status.HTTP_409_CONFLICT,
    ActionNotAllowed: status.HTTP_409_CONFLICT,
    TooSoon: status.HTTP_429_TOO_MANY_REQUESTS,
}
"""The status of each `DeletionError`; any other is a 400."""

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    404: {"model": Problem, "description": "unknown account, or no deletion for it"},
    409: {"model": Problem, "description": "the action does not fit the deletion's stage"},
}
"""The error answers every /v1 route documents in the OpenAPI document."""

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
    status_code: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        Problem(error=error, message=message).model_dump(),
        status_code=status_code,
        headers=headers,
    )


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
    return problem(DELETION_ERRORS.get(type(error), 400), error.code, str(error))


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


async def identifier_taken(request: Request, error: IdentifierTaken) -> Response:
    return problem(409, "identifier_taken", str(error))


EXCEPTION_HANDLERS: dict[
    int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]
] = {
    Unauthorized: unauthorized,
    StarletteHTTPException: http_error,
    DeletionError: deletion_error,
    RequestValidationError: invalid_request,
    IdentifierTaken: identifier_taken,
}
"""For `FastAPI(exception_handlers=...)`: each exception class answered as a problem."""
