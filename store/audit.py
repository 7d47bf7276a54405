"""The audit trail of deletions: what happened to an account, when, by whom; never PII."""

from __future__ import annotations

from store.db import Connection


async def audit(
    conn: Connection, account_id: str, workflow_id: str, kind: str, **detail: object
) -> None:
    """Appends to the audit trail; `detail` holds ids, counts and stages, never PII."""
    await conn.execute(
        "insert into audit_events (account_id, workflow_id, kind, detail) values ($1, $2, $3, $4)",
        account_id,
        workflow_id,
        kind,
        detail,
    )
