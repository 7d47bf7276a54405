"""The verification page's HTML: one explicit case per stage, each saying only what is true.

Plain HTML forms (works without JavaScript), labelled inputs, visible focus, high contrast.
Pages of a deletion on its way refresh themselves. The routes are in
`service.api.routes.verification_page`; what they render is the customer's view of the status
(`service.api.customer`: no purge failure's reason).
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import assert_never

from fastapi.responses import HTMLResponse

from contract.models import (
    DeletionStatus,
    PendingTask,
    TaskCategory,
    VerificationOutcome,
    VerificationStatus,
)
from contract.stages import Stage
from service.api.customer import PURGE_HELD, customer_view

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;
color:#111;background:#fff;line-height:1.5}
h1{font-size:1.5rem}
h2{font-size:1.15rem;margin-top:1.5rem}
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

CATEGORY_HEADINGS: dict[TaskCategory, str] = {
    TaskCategory.CLOUD_PRODUCT: "Cloud products",
    TaskCategory.BALANCE_FUNDS: "Account balance funds",
    TaskCategory.ACCOUNT_GROUP: "Account groups",
    TaskCategory.AGENCY: "Agencies",
    TaskCategory.PARTNERSHIP: "Other partnerships",
    TaskCategory.CONTRACT: "Unfulfilled contracts",
    TaskCategory.ARREARS: "Arrears",
    TaskCategory.PURGE_FAILURE: "Products that cannot delete your data yet",
}
"""The headings of the pending tasks, in this order (SPEC's seven categories, then purges)."""

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


def page(title: str, body: str, status_code: int = 200, *, refresh: bool = False) -> HTMLResponse:
    # Pages of a deletion in progress refresh themselves: no JavaScript needed.
    meta_refresh = '<meta http-equiv="refresh" content="5">' if refresh else ""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta_refresh}<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def note(text: str, kind: str = "", note_id: str | None = None) -> str:
    role = ' role="alert"' if kind == "error" else ' role="status"'
    ident = f' id="{note_id}"' if note_id else ""
    return f'<p class="note {kind}"{ident}{role}>{escape(text)}</p>'


def _button(base: str, action: str, label: str, *, inline: bool = False) -> str:
    form_class = ' class="inline"' if inline else ""
    return (
        f'<form{form_class} method="post" action="{base}/{action}">'
        f'<button type="submit">{escape(label)}</button></form>'
    )


def render(link: str, status: DeletionStatus, notice: str | None) -> HTMLResponse:
    """The page of the deletion in `status`; `notice` reports the last action's outcome."""
    base = f"/verify/{escape(link)}"
    shown = customer_view(status)
    body, refresh = _stage(base, shown)
    return page("Delete your account", (note(notice) if notice else "") + body, refresh=refresh)


def _stage(base: str, status: DeletionStatus) -> tuple[str, bool]:
    """The body for the stage, and whether the page refreshes itself. No case falls through:
    every stage says what is true of it."""
    cancel = _button(base, "cancel", "Cancel the deletion", inline=True)
    stage = status.stage
    match stage:
        case Stage.CHECKING_PREREQUISITES:
            return "<p>We are checking your account.</p>" + cancel, True
        case Stage.AWAITING_TASKS:
            return _tasks(base, status.pending_tasks) + cancel, False
        case Stage.AWAITING_VERIFICATION if status.verified:
            # Accepted a moment ago; the run has not moved to the freeze yet.
            return note(
                "Your code was accepted. Your account is being prepared for deletion."
            ), True
        case Stage.AWAITING_VERIFICATION if status.verification is None:
            return note("Sending your code…") + cancel, True
        case Stage.AWAITING_VERIFICATION:
            assert status.verification is not None
            return _code_form(base, status.verification) + cancel, False
        case Stage.FREEZING:
            accepted = "Your code was accepted. Your account is being prepared for deletion."
            return note(accepted), True
        case Stage.COOLING_OFF:
            return _cooling_off(base, status), False
        case Stage.PURGING:
            deleting = (
                "Your code was accepted. Your account is being deleted; this can take a while."
            )
            return note(deleting), True
        case Stage.PURGE_BLOCKED:
            return note(PURGE_HELD), True
        case Stage.RELEASING_IDENTIFIERS:
            return note("Your data has been deleted. Your account is almost closed."), True
        case Stage.DELETED:
            return note("Your account has been deleted.", "ok"), False
        case Stage.CANCELLED:
            return note("The deletion was cancelled. Your account stays as it was."), False
        case Stage.EXPIRED:
            return note("This deletion request expired. Start a new one from the console."), False
        case Stage.RESTORED:
            restored = (
                "Your account has been restored: nothing was deleted. Sign in again to use it."
            )
            return note(restored, "ok"), False
        case _:
            assert_never(stage)


def _cooling_off(base: str, status: DeletionStatus) -> str:
    """Frozen and restorable until purging starts: the date, and the one button that matters."""
    starts = status.purge_starts_at
    when = f"<strong>{starts:%d %B %Y at %H:%M} UTC</strong>" if starts else "the end of the wait"
    return (
        f"<p>Your account is frozen and will be deleted on {when}. Until then nothing is "
        "deleted, and you can change your mind.</p>"
        "<p>After that date its data is removed from every product and cannot be "
        "recovered.</p>"
        f'<form method="post" action="{base}/restore">'
        '<button type="submit">Restore my account</button></form>'
    )


def _tasks(base: str, tasks: list[PendingTask]) -> str:
    groups = []
    for category, heading in CATEGORY_HEADINGS.items():
        items = "".join(
            f"<li><strong>{escape(t.item)}</strong>: {escape(t.message)}"
            f" {escape(t.resolution)}</li>"
            for t in tasks
            if t.category is category
        )
        if items:
            groups.append(f"<h2>{escape(heading)}</h2><ul>{items}</ul>")
    return (
        "<p>Before your account can be deleted, finish these tasks:</p>"
        + "".join(groups)
        + "<p>When you have finished them, check again.</p>"
        + _button(base, "recheck", "Check again", inline=True)
    )


def _code_form(base: str, v: VerificationStatus) -> str:
    parts = []
    outcome = v.last_outcome
    failed = outcome is not None and outcome is not VerificationOutcome.ACCEPTED
    if outcome is VerificationOutcome.WRONG:
        left = f"{v.attempts_left} attempt{'s' if v.attempts_left != 1 else ''} left"
        parts.append(note(f"{_OUTCOMES[outcome]} {left}.", "error", "code-error"))
    elif outcome is not None and failed:
        parts.append(note(_OUTCOMES[outcome], "error", "code-error"))
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
        + _button(base, "resend", "Send a new code", inline=True)
    )
    return "".join(parts)
