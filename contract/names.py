"""The names the console backend, the verification page and operators depend on (SPEC.md
"Public contract"): task queue, workflow type and id, search attributes, and the shape of
the identifiers they pass in."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "account-deletion"
WORKFLOW_TYPE = "AccountDeletion"
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
REQUESTER_PATTERN = r"^[\w.:-]+$"
"""Who asked: an operator or console user id. No '@': it is shown in the UI, so never an email."""
CODE_PATTERN = r"^[0-9]{6,8}$"
"""A verification code as issued (`DeletionPolicy.code_digits`): any other length is a typo."""
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
"""Free text kept in records: no control characters (PostgreSQL refuses NUL in text and jsonb,
and a newline or escape sequence would forge lines in logs and terminals)."""

ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")
DELETION_STAGE = SearchAttributeKey.for_keyword("DeletionStage")
DELETION_WAITING_ON = SearchAttributeKey.for_keyword("DeletionWaitingOn")
"""`people` while a `manual` product's purge awaits an operator's confirmation; unset otherwise
(saved query: `DeletionStage = "PURGING" AND DeletionWaitingOn = "people"`)."""
WAITING_ON_PEOPLE = "people"


PRODUCT_TASK_QUEUE_PREFIX = "account-deletion-product-"
PRODUCT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
"""A product's name: a task queue suffix, a URL segment and a column value alike."""
PRODUCT_PURGE_ACTIVITY = "purge_product"
"""The activity a `worker` product's worker runs on its task queue (the product kit)."""
PRODUCT_LIVE_RESOURCES_ACTIVITY = "find_live_resources"
"""The live-resource check a `worker` product's worker runs on its task queue."""
PRODUCT_LATE_ROWS_ACTIVITY = "purge_late_rows"
"""Before identifiers are released: a `worker` product purges again what it wrote after its
purge, and answers its receipt with every row counted."""


def product_task_queue(product: str) -> str:
    """Where a `worker` product's own worker polls: `account-deletion-product-<name>`."""
    return PRODUCT_TASK_QUEUE_PREFIX + product


def workflow_id_for(account_id: str) -> str:
    return f"account-deletion-{account_id}"
