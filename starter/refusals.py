"""Reading an update's refusal: the workflow's validators reject what could change nothing
with an `ApplicationError` whose type says why (`contract.errors`)."""

from __future__ import annotations

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contract.errors import CODE_EXPIRED, CODE_LOCKED
from contract.models import VerificationOutcome

REFUSED_CODES = {CODE_LOCKED: VerificationOutcome.LOCKED, CODE_EXPIRED: VerificationOutcome.EXPIRED}
"""A code refused before it was checked is answered as this outcome, as if checked."""


def refusal_of(error: Exception) -> ApplicationError | None:
    """The validator's refusal behind a failed update, if that is why it failed."""
    cause = error.cause if isinstance(error, WorkflowUpdateFailedError) else None
    return cause if isinstance(cause, ApplicationError) else None
