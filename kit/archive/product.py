"""The archive product declared through the kit: what of an account it holds, in which order
it is purged, and which of its resources block a deletion."""

from __future__ import annotations

from kit.declarations import Connection, CustomPurge, KitProduct, LiveResource, TablePurge

NAME = "archive"


async def _purge_access_log(conn: Connection, account_id: str, limit: int) -> int:
    """Up to `limit` of the account's log lines, taken by their physical row ids: the log has
    no key to take batches in order of."""
    status = await conn.execute(
        """
        delete from archive_access_log where ctid = any(array(
            select ctid from archive_access_log where account_id = $1 limit $2
        ))
        """,
        account_id,
        limit,
    )
    return int(status.rsplit(" ", 1)[-1])


async def _access_log_left(conn: Connection, account_id: str) -> int:
    left: int = await conn.fetchval(
        "select count(*) from archive_access_log where account_id = $1", account_id
    )
    return left


ARCHIVE = KitProduct(
    name=NAME,
    title="Archive Storage",
    custom=(CustomPurge("archive_access_log", _purge_access_log, _access_log_left),),
    tables=(
        TablePurge("archive_retrieval_jobs", "job_id"),
        TablePurge("archive_objects", "object_id"),
        TablePurge("archive_vaults", "vault_id"),
    ),
    live=(
        LiveResource(
            "archive_vaults",
            "archive vault",
            "vault_id || ' (' || name || ', ' || region || ')'",
            ("active", "locked"),
            "Delete the vault in the Archive Storage console once it is empty; a locked vault "
            "(retention lock) can be deleted only when its retention period ends.",
        ),
        LiveResource(
            "archive_retrieval_jobs",
            "archive retrieval",
            "job_id || ' (' || object_key || ')'",
            ("in_progress",),
            "Wait for the retrieval to finish (up to 12 hours) or cancel it in the Archive "
            "Storage console.",
        ),
    ),
)
"""Children first: the log and the jobs reference vaults, objects live in them."""
