"""`/v1/accounts/{account_id}/deletion`: the console backend starts a deletion, follows it,
passes on the user's code, and rechecks, resends, retries or cancels.

The status is the customer's view (`service.api.customer`): the console shows it to the user,
so a purge failure's reason (a legal hold is often confidential) is replaced by a generic
message; operators read it with `account-deletion status`, the `status` query or the UI.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from contract.models import CodeCheck, DeletionReceipt, DeletionStatus
from contract.names import ACCOUNT_ID_PATTERN, CODE_PATTERN, PLAIN_TEXT_PATTERN, REQUESTER_PATTERN
from service.api.customer import customer_view
from service.api.deps import Deletions, SettingsDep, Signer, require_token
from service.api.problems import PROBLEMS, Problem

router = APIRouter(
    prefix="/v1/accounts/{account_id}/deletion",
    tags=["deletion"],
    dependencies=[Depends(require_token)],
    responses=PROBLEMS,
)

AccountId = Annotated[
    str,
    Path(pattern=ACCOUNT_ID_PATTERN, description="The account's id, e.g. acct-1f2e3d4c5b6a7988"),
]


class DeletionStarted(BaseModel):
    workflow_id: str
    run_id: str
    started: bool
    """False when a deletion was already in progress: this is that deletion."""
    verification_url: str
    """The page where the user enters the code; signed, expiring, bound to this run."""


class Accepted(BaseModel):
    accepted: bool = True
    detail: str


class CodeSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=CODE_PATTERN, examples=["123456"])


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500, pattern=PLAIN_TEXT_PATTERN)


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requested_by: str = Field(default="console", max_length=200, pattern=REQUESTER_PATTERN)
    """The console user or operator id asking (shown to operators; not an email)."""


@router.post("", status_code=202)
async def start(
    account_id: AccountId,
    deletions: Deletions,
    signer: Signer,
    settings: SettingsDep,
    body: StartRequest | None = None,
) -> DeletionStarted:
    """Starts the deletion, or returns the one in progress (idempotent)."""
    started = await deletions.start(account_id, requested_by=(body or StartRequest()).requested_by)
    link = signer.sign(account_id, started.run_id)
    return DeletionStarted(
        workflow_id=started.workflow_id,
        run_id=started.run_id,
        started=started.started,
        verification_url=f"{settings.base_url()}/verify/{link}",
    )


@router.get("")
async def get_status(account_id: AccountId, deletions: Deletions) -> DeletionStatus:
    """Stage, pending tasks (what to finish first), per-product purge progress: as the
    customer may see them (a purge failure's reason, e.g. a legal hold, is for operators)."""
    return customer_view(await deletions.status(account_id))


@router.get("/receipt")
async def get_receipt(account_id: AccountId, deletions: Deletions) -> DeletionReceipt:
    """The receipt of a finished deletion: what each product purged, and when."""
    return await deletions.receipt(account_id)


@router.post("/verification")
async def submit_code(
    account_id: AccountId, body: CodeSubmission, deletions: Deletions
) -> CodeCheck:
    """Checks the user's code: `accepted`, `wrong` (with attempts left), `expired` (ask
    for a new code) or `locked` (too many wrong attempts: ask for a new code)."""
    return await deletions.verify(account_id, body.code)


@router.post("/recheck", status_code=202)
async def recheck(account_id: AccountId, deletions: Deletions) -> Accepted:
    """Checks the pending tasks again now instead of at the next periodic check."""
    await deletions.recheck(account_id)
    return Accepted(detail="pending tasks will be checked again")


@router.post(
    "/resend-code",
    status_code=202,
    responses={429: {"model": Problem, "description": "too soon, or no codes left"}},
)
async def resend(account_id: AccountId, deletions: Deletions) -> Accepted:
    """Sends a new code; the previous one stops working."""
    await deletions.resend_code(account_id)
    return Accepted(detail="a new code is on its way")


@router.post("/retry", status_code=202)
async def retry(account_id: AccountId, deletions: Deletions) -> Accepted:
    """Retries the products whose purge failed (only those)."""
    await deletions.retry(account_id)
    return Accepted(detail="the failed purges will be retried")


@router.post("/cancel", status_code=202)
async def cancel(
    account_id: AccountId, deletions: Deletions, body: CancelRequest | None = None
) -> Accepted:
    """Cancels before the point of no return (the first purge); 409 afterwards."""
    await deletions.cancel(account_id, (body or CancelRequest()).reason)
    return Accepted(detail="the deletion will be cancelled")
