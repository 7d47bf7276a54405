"""`GET /v1/deletions`: the deletions recorded in PostgreSQL, most recently changed first, a
page at a time, for the console backend's overview (`starter.records.list_deletions` says how
the pages of one listing stay a snapshot: none skipped, none repeated).

Items are the customer's view (`service.api.customer`), as `GET .../deletion` shows them.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from contract.stages import Stage
from service.api.customer import customer_view
from service.api.deps import Deletions, require_token
from service.api.problems import PROBLEMS
from starter.records import DEFAULT_OVERDUE_AFTER, DeletionPage

router = APIRouter(
    prefix="/v1/deletions",
    tags=["deletions"],
    dependencies=[Depends(require_token)],
    responses=PROBLEMS,
)

MAX_LIMIT = 500


@router.get("", response_model=DeletionPage)
async def list_deletions(
    deletions: Deletions,
    stage: Annotated[Stage | None, Query(description="only deletions in this stage")] = None,
    overdue: Annotated[
        bool,
        Query(
            description="only open deletions whose wait's deadline passed, or that have not "
            "changed stage for `overdue_after_seconds`"
        ),
    ] = False,
    overdue_after_seconds: Annotated[
        int, Query(ge=1, le=365 * 86400, description="see `overdue` (default a day)")
    ] = int(DEFAULT_OVERDUE_AFTER.total_seconds()),
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=2000,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="`next_cursor` of the previous page, with the same filters",
        ),
    ] = None,
) -> DeletionPage:
    """Most recently changed first; `next_cursor` is null on the last page. A listing's pages
    are a snapshot of its first page's moment: every deletion recorded by then appears exactly
    once, in that moment's order and filtered by its stage then, even if it changes meanwhile
    (each item shows it as it is now). A cursor works for 24 hours."""
    page = await deletions.list(
        stage,
        limit,
        overdue=overdue,
        overdue_after=timedelta(seconds=overdue_after_seconds),
        cursor=cursor,
    )
    return page.model_copy(update={"items": [customer_view(item) for item in page.items]})
