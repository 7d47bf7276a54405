"""How the workflow reads an activity's failure: its permanent type, and the words to show."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, FailureError


def error_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def error_message(error: ActivityError) -> str:
    """The innermost failure's message: the product's own words (or the timeout)."""
    cause: BaseException = error
    while isinstance(cause, FailureError) and isinstance(cause.cause, FailureError):
        cause = cause.cause
    return cause.message if isinstance(cause, FailureError) else str(error)
