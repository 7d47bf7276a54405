"""The inputs and answers of the workflow's signals and updates: what the user and operators
ask a running deletion (one model per message).

Nothing here does I/O, so the workflow sandbox can import it. `contract.models` re-exports the
older ones under their old names.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contract.names import CODE_PATTERN, PLAIN_TEXT_PATTERN
from contract.stages import Stage


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitCodeInput(_Model):
    code: str = Field(pattern=CODE_PATTERN)


class ResendCodeInput(_Model):
    pass


class RecheckInput(_Model):
    pass


class RetryPurgesInput(_Model):
    pass


class CancelInput(_Model):
    reason: str | None = Field(default=None, max_length=500, pattern=PLAIN_TEXT_PATTERN)


class CancelOutcome(_Model):
    """The `cancel_deletion` update's answer: the run will end CANCELLED at its next step (an
    update that is not honoured is rejected instead, and leaves no trace in history)."""

    stage: Stage
    """The stage the run was in when the cancellation was accepted."""
    reason: str


class RestoreInput(_Model):
    """The `restore` signal and the `request_restore` update: stops the deletion during its
    cooling-off and gives the account back, unfrozen (the run ends RESTORED)."""

    reason: str | None = Field(default=None, max_length=500, pattern=PLAIN_TEXT_PATTERN)
