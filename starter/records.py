"""Deletions as recorded in PostgreSQL: a closed run's status, and the list of deletions.

The `deletions` row is kept in step with every stage change, so it answers for a run that has
closed (or whose workflow does not answer a query in time) and for `list`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from contract.models import DeletionStatus, PendingTask, ProductProgress
from contract.stages import Stage
from registry.products import PRODUCTS

DEFAULT_OVERDUE_AFTER = timedelta(hours=24)
"""How long a deletion may stay in a stage without a deadline before `list` calls it overdue."""

_WAITING_STAGES = (Stage.AWAITING_TASKS, Stage.AWAITING_VERIFICATION, Stage.COOLING_OFF)
"""Stages that wait with a deadline, after which the run ends as EXPIRED (or, for COOLING_OFF,
starts purging: the row's deadline is then when purging starts)."""


class ListedDeletion(DeletionStatus):
    """A deletion as `list` shows it: its recorded status, since when it is in its stage and
    whether it is overdue (see `DeletionClient.list`)."""

    stage_since: datetime
    overdue: Literal["deadline_passed", "stalled"] | None = None


async def recorded_status(pool: asyncpg.Pool, account_id: str) -> DeletionStatus | None:
    """The account's deletion as last recorded; None if none was ever requested."""
    row = await pool.fetchrow(
        """
        select workflow_id, account_id, stage, requested_by, pending_tasks, products, closed_at,
            deadline
        from deletions where account_id = $1
        """,
        account_id,
    )
    return None if row is None else _status_from_row(row)


async def list_deletions(
    pool: asyncpg.Pool,
    stage: Stage | None,
    limit: int,
    *,
    overdue: bool,
    overdue_after: timedelta,
) -> list[ListedDeletion]:
    """Most recently changed first. An open deletion is overdue when
    - it waits with a deadline (AWAITING_TASKS, AWAITING_VERIFICATION, COOLING_OFF until its
      purge starts) and the deadline has passed: the run should have moved on by now, so no
      worker is moving it; or
    - it is in any other stage (PURGE_BLOCKED waiting for a fix and a retry, or a working
      stage such as PURGING) and has not changed stage for longer than `overdue_after`.
    """
    rows = await pool.fetch(
        """
        with listed as (
            select workflow_id, account_id, stage, requested_by, pending_tasks, products,
                closed_at, deadline, updated_at,
                case
                    when closed_at is not null then null
                    when stage = any($3::text[]) then
                        case when deadline < now() then 'deadline_passed' end
                    when updated_at < now() - $4::interval then 'stalled'
                end as overdue
            from deletions
        )
        select * from listed
        where ($1::text is null or stage = $1) and (not $5 or overdue is not null)
        order by updated_at desc limit $2
        """,
        stage.value if stage else None,
        limit,
        [s.value for s in _WAITING_STAGES],
        overdue_after,
        overdue,
    )
    return [_listed_from_row(row) for row in rows]


def _status_from_row(row: asyncpg.Record) -> DeletionStatus:
    stage = Stage(row["stage"])
    return DeletionStatus(
        account_id=row["account_id"],
        workflow_id=row["workflow_id"],
        stage=stage,
        requested_by=row["requested_by"],
        pending_tasks=[PendingTask.model_validate(task) for task in row["pending_tasks"]],
        products=sorted(
            (ProductProgress.model_validate(p) for p in row["products"].values()),
            key=lambda progress: _REGISTRY_ORDER.get(progress.product, len(_REGISTRY_ORDER)),
        ),
        identifiers_released=stage is Stage.DELETED,
        verified=stage in _VERIFIED_STAGES,
        purge_starts_at=row["deadline"] if stage is Stage.COOLING_OFF else None,
    )


def _listed_from_row(row: asyncpg.Record) -> ListedDeletion:
    fields = dict(_status_from_row(row))
    open_wait = row["closed_at"] is None and row["stage"] != Stage.COOLING_OFF
    fields["deadline"] = row["deadline"] if open_wait else None
    return ListedDeletion(**fields, stage_since=row["updated_at"], overdue=row["overdue"])


_REGISTRY_ORDER = {product.name: index for index, product in enumerate(PRODUCTS)}
"""Products are shown in the registry's order, as the running workflow shows them."""

_VERIFIED_STAGES = {
    Stage.FREEZING,
    Stage.COOLING_OFF,
    Stage.RESTORED,
    Stage.PURGING,
    Stage.PURGE_BLOCKED,
    Stage.RELEASING_IDENTIFIERS,
    Stage.DELETED,
}
