"""The failure types the workflow acts on, shared by the activities that raise them.

Each is the `type` of a non-retryable `ApplicationError`: a permanent condition that retrying
cannot change. The workflow lists them in its retry policies and branches on them; operators
see them in the Temporal UI. The strings are part of recorded histories: never rename one.
"""

ACCOUNT_MISSING = "AccountMissing"
"""The deletion's account does not exist (any more)."""
ACCOUNT_NOT_ACTIVE = "AccountNotActive"
"""A code was asked for an account that is frozen or deleted."""
NO_CONTACT = "NoContactChannel"
"""The account has neither email nor phone: no code can reach its owner."""
UNKNOWN_CHALLENGE = "UnknownChallenge"
"""A code was checked against a verification challenge that was never issued."""
CODE_LIMIT_REACHED = "CodeLimitReached"
"""The account or its recipient was sent the most codes allowed in 24 hours, across runs; the
details say when the next is allowed: `{"retry_after_seconds": N, "next_code_at": ISO 8601}`."""
CODE_NOT_AWAITED = "CodeNotAwaited"
"""A code was submitted while the run awaits none (the `verify_code` update's rejection)."""
PURGE_REFUSED = "PurgeRefused"
"""The product refuses to purge (a legal hold): a pending task until an operator retries."""
UNKNOWN_PRODUCT = "UnknownProduct"
"""A purge was asked for a product that is not in the registry."""
PURGE_INCOMPLETE = "PurgeIncomplete"
"""The verify-gone probe still found the account's rows after the purge (retried)."""
PURGES_UNFINISHED = "PurgesUnfinished"
"""Identifiers were to be released while a product of the registry has no finished purge."""
UNKNOWN_NOTIFICATION = "UnknownNotification"
"""A notification was to be delivered that the outbox does not hold."""
NOTIFICATION_EXPIRED = "NotificationExpired"
"""A notification was not delivered in time (a day) or its account was deleted meanwhile:
its recipient and body were cleared, nothing can deliver it any more."""
CANCEL_REFUSED = "CancelRefused"
"""A cancellation asked after the point of no return (the `request_cancel` update's rejection)."""
WRONG_STAGE = "WrongStage"
"""An update asked for what the run's stage does not allow (a retry while nothing is blocked)."""
ALREADY_ASKED = "AlreadyAsked"
"""An update asked for what is already asked and not yet done: the one request stands."""
TOO_SOON = "TooSoon"
"""An update came sooner than the policy allows; its details hold the seconds to wait."""
CODE_LOCKED = "CodeLocked"
"""A code was submitted for a challenge with no attempts left: a new code is needed."""
CODE_EXPIRED = "CodeExpired"
"""A code was submitted after the current code expired: a new code is needed."""
NO_CODES_LEFT = "NoCodesLeft"
"""A resend asked when every code the deletion may send was sent: waiting does not help."""
PRODUCT_PURGE_FAILED = "ProductPurgeFailed"
"""An `http` product reported that its purge failed (its callback or its status): a pending
task until an operator retries."""
PRODUCT_API_REFUSED = "ProductApiRefused"
"""An `http` product's API refused the signed request (a 4xx other than 404, 408 and 429: a
wrong secret or URL, a request it cannot take): a pending task until an operator retries."""
