"""The verification page: where the user enters the code, asks for a new one, or cancels.

Plain HTML forms (works without JavaScript), labelled inputs, visible focus, high contrast.
Every action redirects back to the page, which shows the outcome in words. No token: the
signed link under /verify/{link} is the credential.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

import asyncio
from datetime import UTC, datetime
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from contract.models import DeletionStatus, VerificationOutcome
from contract.stages import Stage
from service.api.deps import Deletions, Signer
from service.api.links import InvalidLink, LinkClaims
from starter.client import DeletionClient, DeletionError

router = APIRouter(prefix="/verify/{link}", include_in_schema=False)

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;
color:#111;background:#fff;line-height:1.5}
h1{font-size:1.5rem}
.note{padding:.75rem 1rem;border-left:4px solid #444;background:#f3f3f3}
.error{border-color:#a00000;background:#fdecea}
.ok{border-color:#0a5c2f;background:#e8f5ec}
label{display:block;font-weight:600;margin-top:1rem}
input{font-size:1.25rem;padding:.4rem;width:14ch;letter-spacing:.2em}
button{font-size:1rem;padding:.5rem 1rem;margin-top:.75rem;cursor:pointer}
button.danger{background:#a00000;color:#fff;border:0}
:focus-visible{outline:3px solid #1a4fd6;outline-offset:2px}
form.inline{display:inline-block;margin-right:1rem}
"""

_OUTCOMES = {
    VerificationOutcome.WRONG: "That code is not right.",
    VerificationOutcome.EXPIRED: "That code has expired or was replaced. Ask for a new code.",
    VerificationOutcome.LOCKED: "Too many wrong attempts for this code. Ask for a new code.",
    VerificationOutcome.ACCEPTED: "Code accepted.",
}


_HEADERS = {
    # The link works like a password and the page has a destructive button.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _page(title: str, body: str, status_code: int = 200, *, refresh: bool = False) -> HTMLResponse:
    # Pages of a deletion in progress refresh themselves: no JavaScript needed.
    meta_refresh = '<meta http-equiv="refresh" content="5">' if refresh else ""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta_refresh}<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _note(text: str, kind: str = "", note_id: str | None = None) -> str:
    role = ' role="alert"' if kind == "error" else ' role="status"'
    ident = f' id="{note_id}"' if note_id else ""
    return f'<p class="note {kind}"{ident}{role}>{escape(text)}</p>'


def _render(link: str, status: DeletionStatus, notice: str | None) -> HTMLResponse:
    base = f"/verify/{escape(link)}"
    parts = [_note(notice)] if notice else []
    stage = status.stage
    if stage is Stage.AWAITING_VERIFICATION and status.verification:
        v = status.verification
        outcome = v.last_outcome
        failed = outcome is not None and outcome is not VerificationOutcome.ACCEPTED
        if outcome is VerificationOutcome.WRONG:
            left = f"{v.attempts_left} attempt{'s' if v.attempts_left != 1 else ''} left"
            parts.append(_note(f"{_OUTCOMES[outcome]} {left}.", "error", "code-error"))
        elif outcome is not None and failed:
            parts.append(_note(_OUTCOMES[outcome], "error", "code-error"))
        described = "code-error code-help" if failed else "code-help"
        invalid = ' aria-invalid="true"' if failed else ""
        minutes = max(0, round((v.code_expires_at - datetime.now(UTC)).total_seconds() / 60))
        parts.append(
            f"<p>We sent a code to <strong>{escape(v.destination)}</strong>. It is valid for "
            f"about {minutes} more minute{'s' if minutes != 1 else ''} (until "
            f"<strong>{v.code_expires_at:%H:%M} UTC</strong> on {v.code_expires_at:%d %B %Y}).</p>"
            "<p>Deleting your account removes your data from every product and cannot be "
            "undone.</p>"
            f'<form method="post" action="{base}/code">'
            '<label for="code">Verification code</label>'
            '<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" '
            f'pattern="[0-9]{{6,8}}" required autofocus aria-describedby="{described}"{invalid}>'
            '<p id="code-help">The digits from the message, without spaces.</p>'
            '<button type="submit" class="danger">Delete my account</button></form>'
            f'<form class="inline" method="post" action="{base}/resend">'
            '<button type="submit">Send a new code</button></form>'
            f'<form class="inline" method="post" action="{base}/cancel">'
            '<button type="submit">Cancel the deletion</button></form>'
        )
    elif stage in (Stage.CHECKING_PREREQUISITES, Stage.AWAITING_TASKS):
        items = "".join(
            f"<li><strong>{escape(t.item)}</strong>: {escape(t.message)}"
            f" {escape(t.resolution)}</li>"
            for t in status.pending_tasks
        )
        parts.append(
            f"<p>Before your account can be deleted, finish these tasks:</p><ul>{items}</ul>"
            if items
            else "<p>We are checking your account.</p>"
        )
        parts.append(
            f'<form method="post" action="{base}/cancel">'
            '<button type="submit">Cancel the deletion</button></form>'
        )
    elif stage is Stage.DELETED:
        parts.append(_note("Your account has been deleted.", "ok"))
    elif stage is Stage.CANCELLED:
        parts.append(_note("The deletion was cancelled. Your account stays as it was."))
    elif stage is Stage.EXPIRED:
        parts.append(_note("This deletion request expired. Start a new one from the console."))
    else:
        parts.append(
            _note("Your code was accepted. Your account is being deleted; this can take a while.")
        )
    in_progress = stage in (
        Stage.CHECKING_PREREQUISITES,
        Stage.FREEZING,
        Stage.PURGING,
        Stage.PURGE_BLOCKED,
        Stage.RELEASING_IDENTIFIERS,
    )
    return _page("Delete your account", "".join(parts), refresh=in_progress)


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
    return _page(
        "This link does not work",
        _note(
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
    return _render(link, status, _NOTICES.get(notice or ""))


@router.post("/code")
async def submit(
    link: str, claim: Claims, deletions: Deletions, code: Annotated[str, Form()] = ""
) -> Response:
    if claim is None:
        return _refused()
    code = code.strip().replace(" ", "")
    if not code.isdigit() or not 4 <= len(code) <= 10:  # also what a browser let through
        return _back(link, "digits")
    try:
        await deletions.verify(claim.account_id, code)
    except DeletionError:
        return _back(link, "not_now")
    # The outcome is in the status now; the page shows it after the redirect.
    return _back(link)


@router.post("/resend")
async def resend(link: str, claim: Claims, deletions: Deletions) -> Response:
    if claim is None:
        return _refused()
    try:
        await deletions.resend_code(claim.account_id)
    except DeletionError:
        return _back(link, "resend_refused")
    return _back(link, "resent")


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
    "digits": "Enter the code's digits only.",
    "not_now": "A code is not expected right now.",
    "cancel_refused": "The deletion can no longer be cancelled: deleting has begun.",
}


async def _cancel_shown(deletions: DeletionClient, account_id: str) -> None:
    """Waits briefly for the workflow to act on the cancel signal, so the page shows it."""
    for _ in range(50):
        if (await deletions.status(account_id)).stage.is_final:
            return
        await asyncio.sleep(0.1)
