"""Reading an update's refusal: the workflow's validators reject what could change nothing
with an `ApplicationError` whose type says why (`contract.errors`)."""

from __future__ import annotations

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contract.errors import CODE_EXPIRED, CODE_LOCKED, NO_CODES_LEFT, TOO_SOON, UNKNOWN_PRODUCT
from contract.models import VerificationOutcome
from starter.errors import DeletionError, NoCodesLeft, ProductNotFound, TooSoon

REFUSED_CODES = {CODE_LOCKED: VerificationOutcome.LOCKED, CODE_EXPIRED: VerificationOutcome.EXPIRED}
"""A code refused before it was checked is answered as this outcome, as if checked."""


def refusal_of(error: Exception) -> ApplicationError | None:
    """The validator's refusal behind a failed update, if that is why it failed."""
    cause = error.cause if isinstance(error, WorkflowUpdateFailedError) else None
    return cause if isinstance(cause, ApplicationError) else None


def client_error(refusal: ApplicationError) -> DeletionError | None:
    """The client's error for a refusal whose type alone says what it is (an unknown product,
    no codes left, too soon with the seconds to wait); None for those answered by the stage."""
    if refusal.type == UNKNOWN_PRODUCT:
        return ProductNotFound(refusal.message)
    if refusal.type == NO_CODES_LEFT:
        return NoCodesLeft(refusal.message)
    if refusal.type == TOO_SOON:
        wait = refusal.details[0] if refusal.details else None
        return TooSoon(refusal.message, int(wait) if wait is not None else 1)
    return None
