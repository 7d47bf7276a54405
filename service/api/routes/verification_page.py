"""The verification page: where the user enters the code, asks for a new one, checks the
pending tasks again, cancels, or restores the account during its cooling-off.

Every action redirects back to the page, which shows the outcome in words (`service.api.page`
renders it). No token: the signed link under /verify/{link} is the credential.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from contract.models import DeletionStatus, SubmitCodeInput
from contract.stages import Stage
from service.api.deps import Deletions, Signer
from service.api.links import InvalidLink, LinkClaims
from service.api.page import note, page, render
from starter.client import DeletionClient
from starter.errors import DeletionError, TooSoon

router = APIRouter(prefix="/verify/{link}", include_in_schema=False)


async def link_claims(link: str, signer: Signer, deletions: Deletions) -> LinkClaims | None:
    """The link's claims if it is genuine, unexpired and for the account's current run."""
    try:
        claim = signer.verify(link)
    except InvalidLink:
        return None
    try:
        current = await deletions.current_run_id(claim.account_id)
    except DeletionError:
        return None
    return claim if current == claim.run_id else None


Claims = Annotated[LinkClaims | None, Depends(link_claims)]
"""None when the link does not open the page: the route answers `_refused()`."""


def _refused() -> HTMLResponse:
    return page(
        "This link does not work",
        note(
            "The link is not valid or has expired. Open the deletion again from the console "
            "to get a new link.",
            "error",
        ),
        status_code=403,
    )


def _back(link: str, notice: str | None = None) -> Response:
    target = f"/verify/{link}" + (f"?notice={notice}" if notice else "")
    return RedirectResponse(target, status_code=303)


@router.get("")
async def show(
    link: str, claim: Claims, deletions: Deletions, notice: str | None = None
) -> Response:
    if claim is None:
        return _refused()
    try:
        status = await deletions.status(claim.account_id)
    except DeletionError:
        return _refused()
    return render(link, status, _NOTICES.get(notice or ""))


@router.post("/code")
async def submit(
    link: str, claim: Claims, deletions: Deletions, code: Annotated[str, Form()] = ""
) -> Response:
    if claim is None:
        return _refused()
    try:
        # The API's rule (CODE_PATTERN: 6 to 8 ASCII digits), checked before anything reaches
        # the run: a code of another shape costs no attempt, and the error, which would quote
        # the digits, is dropped here.
        submission = SubmitCodeInput(code=code.strip().replace(" ", ""))
    except ValidationError:
        return _back(link, "digits")
    try:
        await deletions.verify(claim.account_id, submission.code)
    except DeletionError:
        return _back(link, "not_now")
    # The outcome is in the status now; the page shows it after the redirect.
    return _back(link)


@router.post("/recheck")
async def recheck(link: str, claim: Claims, deletions: Deletions) -> Response:
    """Checks the pending tasks again now; answers with the page once the check shows."""
    if claim is None:
        return _refused()
    try:
        before = await deletions.status(claim.account_id)
        await deletions.recheck(claim.account_id)
    except TooSoon:
        return _back(link, "recheck_soon")
    except DeletionError:
        return _back(link, "recheck_refused")
    await _recheck_shown(deletions, claim.account_id, before)
    return _back(link, "rechecked")


@router.post("/resend")
async def resend(link: str, claim: Claims, deletions: Deletions) -> Response:
    if claim is None:
        return _refused()
    try:
        await deletions.resend_code(claim.account_id)
    except DeletionError:
        return _back(link, "resend_refused")
    return _back(link, "resent")


@router.post("/restore")
async def restore(link: str, claim: Claims, deletions: Deletions) -> Response:
    """Gives the account back during its cooling-off; answers once the page shows it."""
    if claim is None:
        return _refused()
    try:
        await deletions.restore(claim.account_id, "restored on the verification page")
    except DeletionError:
        return _back(link, "restore_refused")
    await _cancel_shown(deletions, claim.account_id)
    return _back(link)


@router.post("/cancel")
async def cancel(link: str, claim: Claims, deletions: Deletions) -> Response:
    if claim is None:
        return _refused()
    try:
        await deletions.cancel(claim.account_id, "cancelled on the verification page")
    except DeletionError:
        return _back(link, "cancel_refused")
    await _cancel_shown(deletions, claim.account_id)
    return _back(link)


_NOTICES = {
    "resent": "A new code is on its way. The previous code no longer works.",
    "resend_refused": "A new code cannot be sent right now. Wait a minute and try again.",
    "digits": "Enter the code's digits only: a code is 6 to 8 digits.",
    "not_now": "A code is not expected right now.",
    "cancel_refused": "The deletion can no longer be cancelled: deleting has begun.",
    "restore_refused": "Your account can no longer be restored: deleting has begun.",
    "rechecked": "We checked your account again.",
    "recheck_refused": "There are no pending tasks to check right now.",
    "recheck_soon": "We checked your account moments ago. Check again in a few seconds.",
}


async def _cancel_shown(deletions: DeletionClient, account_id: str) -> None:
    """Waits briefly for the workflow to act on a cancel or a restore, so the page shows it."""
    for _ in range(50):
        if (await deletions.status(account_id)).stage.is_final:
            return
        await asyncio.sleep(0.1)


async def _recheck_shown(
    deletions: DeletionClient, account_id: str, before: DeletionStatus
) -> None:
    """Waits briefly until the run took up the recheck (it leaves AWAITING_TASKS to check, or
    the tasks changed), so that the page answered shows the check's outcome."""
    for _ in range(30):
        now = await deletions.status(account_id)
        if now.stage is not Stage.AWAITING_TASKS or now.pending_tasks != before.pending_tasks:
            return
        await asyncio.sleep(0.1)
