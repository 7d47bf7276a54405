"""Deletions as recorded in PostgreSQL: a closed run's status, and the list of deletions.

The `deletions` row is kept in step with every stage change, so it answers for a run that has
closed (or whose workflow does not answer a query in time) and for `list`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict

from contract.models import DeletionStatus, PendingTask, ProductProgress
from contract.stages import Stage
from registry.products import PRODUCTS
from starter.errors import InvalidCursor

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


class DeletionPage(BaseModel):
    """One page of a listing; `next_cursor` leads to the next, None on the last page."""

    items: list[ListedDeletion]
    next_cursor: str | None = None


class _Cursor(BaseModel):
    """What a cursor holds (base64url JSON, opaque to clients): the listing's snapshot (`h`, the
    last change recorded when its first page was served, and `t`, that moment), its filters,
    and the place after which the next page starts (`p`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    h: int
    t: datetime
    p: int
    stage: Stage | None
    overdue: bool
    after: float


CURSOR_LIFETIME = timedelta(hours=24)
"""A listing's cursors work this long after its first page: the stage log keeps what a
snapshot needs at least that long (`store.event_relay.SUPERSEDED_KEPT`)."""


def _decode(cursor: str) -> _Cursor:
    try:
        return _Cursor.model_validate_json(base64.urlsafe_b64decode(cursor.encode() + b"=="))
    except (ValueError, binascii.Error):
        raise InvalidCursor("the cursor is not one this API made: start the list again") from None


def _encode(cursor: _Cursor) -> str:
    return base64.urlsafe_b64encode(cursor.model_dump_json().encode()).decode().rstrip("=")


_LIST = """
with snapshot as (
    select workflow_id, change_seq as seq, stage, stage_changed_at as at, deadline,
        closed_at is not null as closed
    from deletions where change_seq <= $1
    union all
    (select distinct on (e.workflow_id) e.workflow_id, e.seq, e.stage, e.at, e.deadline, e.closed
     from deletions d join deletion_events e on e.workflow_id = d.workflow_id and e.seq <= $1
     where d.change_seq > $1
     order by e.workflow_id, e.seq desc)
), listed as (
    select workflow_id, seq, stage,
        case
            when closed then null
            when stage = any($3::text[]) then case when deadline < $2 then 'deadline_passed' end
            when at < $2 - $4::interval then 'stalled'
        end as overdue
    from snapshot
)
select l.seq as listed_seq, d.workflow_id, d.account_id, d.stage, d.requested_by,
    d.pending_tasks, d.products, d.closed_at, d.deadline, d.stage_changed_at,
    case
        when d.closed_at is not null then null
        when d.stage = any($3::text[]) then
            case when d.deadline < now() then 'deadline_passed' end
        when d.stage_changed_at < now() - $4::interval then 'stalled'
    end as overdue
from listed l join deletions d using (workflow_id)
where ($5::text is null or l.stage = $5) and (not $6 or l.overdue is not null)
    and l.seq < $7
order by l.seq desc limit $8
"""


async def list_deletions(
    pool: asyncpg.Pool,
    stage: Stage | None,
    limit: int,
    *,
    overdue: bool,
    overdue_after: timedelta,
    cursor: str | None = None,
) -> DeletionPage:
    """Most recently changed stage first, in pages (`DeletionClient.list` says what overdue
    means).

    A listing (a first page and the pages its cursors lead to) is a snapshot taken when its
    first page is served: which deletions it holds, their order, and the stage and overdue
    filters are as they were at that moment, whatever changes while the client pages, so no
    deletion is skipped or repeated. That needs each deletion's place as of the snapshot: for
    one that changed stage since, its last change up to the snapshot, from the stage log (its
    order is commit order, `store/stage_log.py`). Each item shows the deletion as it is when
    its page is served (its stage may have moved on); deletions started after the first page
    are in the next listing. Raises `InvalidCursor` for a cursor not made by this function
    with the same filters, or older than `CURSOR_LIFETIME`.
    """
    after = overdue_after.total_seconds()
    if cursor is None:
        snapshot = await pool.fetchrow("select last_seq, now() as at from deletion_event_counter")
        assert snapshot is not None, "migration 0012 makes the counter's row"
        at: datetime = snapshot["at"]
        place = _Cursor(
            h=snapshot["last_seq"],
            t=at,
            p=snapshot["last_seq"] + 1,
            stage=stage,
            overdue=overdue,
            after=after,
        )
    else:
        place = _decode(cursor)
        if (place.stage, place.overdue, place.after) != (stage, overdue, after):
            raise InvalidCursor("the cursor belongs to a listing with other filters")
        if datetime.now(UTC) - place.t > CURSOR_LIFETIME:
            raise InvalidCursor("the cursor has expired (24 hours): start the list again")
    rows = await pool.fetch(
        _LIST,
        place.h,
        place.t,
        [s.value for s in _WAITING_STAGES],
        overdue_after,
        stage.value if stage else None,
        overdue,
        place.p,
        limit + 1,
    )
    items = [_listed_from_row(row) for row in rows[:limit]]
    if len(rows) <= limit:
        return DeletionPage(items=items)
    following = place.model_copy(update={"p": rows[limit - 1]["listed_seq"]})
    return DeletionPage(items=items, next_cursor=_encode(following))


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
    return ListedDeletion(**fields, stage_since=row["stage_changed_at"], overdue=row["overdue"])


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
