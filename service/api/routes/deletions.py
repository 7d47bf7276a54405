"""`/v1/accounts/{account_id}/deletion`: the console backend starts a deletion, follows it,
passes on the user's code, and rechecks, resends, retries, cancels or restores.

Every POST takes an `Idempotency-Key` (`service.api.idempotency`): the code's key is the id of
the Temporal update that checks it; the other verbs' answers are stored and replayed.

The status is the customer's view (`service.api.customer`): the console shows it to the user,
so a purge failure's reason (a legal hold is often confidential) is replaced by a generic
message; operators read it with `account-deletion status`, the `status` query or the UI.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from contract.cooling_off import CoolingOffDuration
from contract.models import CodeCheck, DeletionReceipt, DeletionStatus
from contract.names import (
    ACCOUNT_ID_PATTERN,
    CODE_PATTERN,
    PLAIN_TEXT_PATTERN,
    PRODUCT_NAME_PATTERN,
    REQUESTER_PATTERN,
)
from service.api.customer import customer_view
from service.api.deps import Deletions, IdempotencyStore, SettingsDep, Signer, require_token
from service.api.idempotency import IdempotencyKey
from service.api.problems import PROBLEMS, Problem

router = APIRouter(
    prefix="/v1/accounts/{account_id}/deletion",
    tags=["deletion"],
    dependencies=[Depends(require_token)],
    responses=PROBLEMS,
)
ROUTE = "/v1/accounts/{account_id}/deletion"
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        **PROBLEMS[409],
        "model": Problem,
        "description": "too soon: `Retry-After` says when a new code can be sent",
    },
    409: {**PROBLEMS[409], "description": "not awaiting a code, or no codes left"},
}

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
    cooling_off: CoolingOffDuration | None = Field(default=None, examples=["P15D"])
    """An ISO 8601 duration, PT0S to P90D: the account stays frozen and restorable this long
    before purging starts (POST .../restore). Unset: PT0S, purging at once."""


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500, pattern=PLAIN_TEXT_PATTERN)


@router.post("", status_code=202, response_model=DeletionStarted)
async def start(
    account_id: AccountId,
    deletions: Deletions,
    signer: Signer,
    settings: SettingsDep,
    store: IdempotencyStore,
    key: IdempotencyKey,
    body: StartRequest | None = None,
) -> Response:
    """Starts the deletion, or returns the one in progress (idempotent: one run per account)."""

    async def act() -> DeletionStarted:
        asked = body or StartRequest()
        started = await deletions.start(
            account_id, requested_by=asked.requested_by, cooling_off=asked.cooling_off
        )
        link = signer.sign(account_id, started.run_id)
        return DeletionStarted(
            workflow_id=started.workflow_id,
            run_id=started.run_id,
            started=started.started,
            verification_url=f"{settings.base_url()}/verify/{link}",
        )

    return await store.answer(
        key, route=f"POST {ROUTE}", scope=account_id, body=body, status_code=202, act=act
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
    account_id: AccountId, body: CodeSubmission, deletions: Deletions, key: IdempotencyKey
) -> CodeCheck:
    """Checks the user's code: `accepted`, `wrong` (with attempts left), `expired` (ask
    for a new code) or `locked` (too many wrong attempts: ask for a new code). A repeat with
    the same `Idempotency-Key` gets the first answer and costs no attempt."""
    return await deletions.verify(account_id, body.code, idempotency_key=key)


async def _signalled(
    store: IdempotencyStore,
    key: str | None,
    account_id: str,
    verb: str,
    act: Callable[[], Awaitable[Accepted]],
    body: BaseModel | None = None,
) -> Response:
    return await store.answer(
        key, route=f"POST {ROUTE}/{verb}", scope=account_id, body=body, status_code=202, act=act
    )


@router.post("/recheck", status_code=202, response_model=Accepted, responses=RATE_LIMITED)
async def recheck(
    account_id: AccountId, deletions: Deletions, store: IdempotencyStore, key: IdempotencyKey
) -> Response:
    """Checks the pending tasks again now instead of at the next periodic check (429 within
    seconds of the last check)."""

    async def act() -> Accepted:
        await deletions.recheck(account_id)
        return Accepted(detail="pending tasks will be checked again")

    return await _signalled(store, key, account_id, "recheck", act)


@router.post("/resend-code", status_code=202, response_model=Accepted, responses=RATE_LIMITED)
async def resend(
    account_id: AccountId, deletions: Deletions, store: IdempotencyStore, key: IdempotencyKey
) -> Response:
    """Sends a new code; the previous one stops working."""

    async def act() -> Accepted:
        await deletions.resend_code(account_id)
        return Accepted(detail="a new code is on its way")

    return await _signalled(store, key, account_id, "resend-code", act)


@router.post("/retry", status_code=202, response_model=Accepted)
async def retry(
    account_id: AccountId, deletions: Deletions, store: IdempotencyStore, key: IdempotencyKey
) -> Response:
    """Retries the products whose purge failed (only those)."""

    async def act() -> Accepted:
        await deletions.retry(account_id)
        return Accepted(detail="the failed purges will be retried")

    return await _signalled(store, key, account_id, "retry", act)


class PurgeConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirmed_by: str = Field(max_length=200, pattern=REQUESTER_PATTERN, examples=["ops.jane"])
    """The operator vouching that a person purged the product (audit log and receipt)."""


@router.post("/products/{product}/confirm", status_code=202, response_model=Accepted)
async def confirm_purge(
    account_id: AccountId,
    product: Annotated[str, Path(pattern=PRODUCT_NAME_PATTERN, examples=["tape_archive"])],
    body: PurgeConfirmation,
    deletions: Deletions,
    store: IdempotencyStore,
    key: IdempotencyKey,
) -> Response:
    """Confirms that a person purged a `manual` product; 404 for a product that is not a
    manual one of this deletion, 409 when it does not await confirmation."""

    async def act() -> Accepted:
        await deletions.confirm_purge(account_id, product, body.confirmed_by)
        return Accepted(detail=f"the purge of {product} is confirmed")

    return await _signalled(store, key, account_id, f"products/{product}/confirm", act, body)


@router.post("/cancel", status_code=202, response_model=Accepted)
async def cancel(
    account_id: AccountId,
    deletions: Deletions,
    store: IdempotencyStore,
    key: IdempotencyKey,
    body: CancelRequest | None = None,
) -> Response:
    """Cancels before the point of no return (the first purge); 409 afterwards."""

    async def act() -> Accepted:
        await deletions.cancel(account_id, (body or CancelRequest()).reason)
        return Accepted(detail="the deletion will be cancelled")

    return await _signalled(store, key, account_id, "cancel", act, body)


@router.post("/restore", status_code=202, response_model=Accepted)
async def restore(
    account_id: AccountId,
    deletions: Deletions,
    store: IdempotencyStore,
    key: IdempotencyKey,
    body: RestoreRequest | None = None,
) -> Response:
    """Gives the account back during its cooling-off: unfrozen, nothing deleted (the deletion
    ends RESTORED); 409 outside it, from the moment purging begins."""

    async def act() -> Accepted:
        await deletions.restore(account_id, (body or RestoreRequest()).reason)
        return Accepted(detail="the account will be restored")

    return await _signalled(store, key, account_id, "restore", act, body)
