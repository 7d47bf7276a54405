"""What the client refuses, and why: each error's `code` is what the API shows (with its
HTTP status, `service/api/problems.py`) and the CLI's exit code follows from it."""

from __future__ import annotations

from contract.stages import Stage


class DeletionError(Exception):
    """A request that cannot be carried out; `code` says which kind (the API maps it)."""

    code = "error"


class AccountNotFound(DeletionError):
    code = "account_not_found"


class DeletionNotFound(DeletionError):
    code = "deletion_not_found"


class ProductNotFound(DeletionError):
    """The deletion has no such product awaiting an operator (not `manual`, or not planned)."""

    code = "product_not_found"


class AccountAlreadyDeleted(DeletionError):
    code = "account_deleted"


class ActionNotAllowed(DeletionError):
    """The action does not fit the deletion's stage (a code when none is awaited, ...)."""

    code = "action_not_allowed"

    def __init__(self, message: str, stage: Stage) -> None:
        super().__init__(message)
        self.stage = stage


class CodeRefused(DeletionError):
    """The code was checked and not accepted (wrong, expired or locked)."""

    code = "code_refused"


class TooSoon(DeletionError):
    """Asked sooner than allowed (a resend before its interval, a code beyond the limits of a
    day, a recheck right after a check): `retry_after` is the seconds to wait (`Retry-After`)."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NoCodesLeft(DeletionError):
    """Every code this deletion may send was sent: waiting does not help (cancel, start again)."""

    code = "codes_exhausted"


class InvalidCursor(DeletionError):
    """A list cursor that is malformed, expired, or belongs to a listing with other filters."""

    code = "invalid_cursor"
