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
