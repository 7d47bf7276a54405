"""The cooling-off window (SPEC "Cooling-off and restore"): how long it may be, what a run
carries of it into the next, and the notices it sends (restoring is a message:
`contract.messages.RestoreInput`).

Nothing here does I/O, so the workflow sandbox can import it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

MAX_COOLING_OFF = timedelta(days=90)
COOLING_OFF_RULE = (
    "cooling_off must be an ISO 8601 duration in weeks, days, hours, minutes or seconds, from"
    " PT0S (none: purging starts at once) to P90D, e.g. P15D or PT12H"
)
"""What the API, the client and the CLI answer to a value they refuse (without repeating it)."""
REMINDER_BEFORE_END = timedelta(days=1)
"""The reminder goes out this long before the window ends, for windows of at least two days."""

_ISO_DURATION = re.compile(
    r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
"""Weeks, days and a time part; no years or months, whose length depends on the calendar."""


def parse_cooling_off(value: object) -> timedelta:
    """An ISO 8601 duration (`P15D`) or a timedelta, between zero and 90 days; refused with
    COOLING_OFF_RULE otherwise (`15`, `1 day`, `P1M` are not accepted: ambiguous)."""
    duration: timedelta | None = value if isinstance(value, timedelta) else None
    if isinstance(value, str) and value.strip().upper() not in ("P", ""):
        match = _ISO_DURATION.fullmatch(value.strip().upper())
        if match is not None:
            weeks, days, hours, minutes = (int(part or 0) for part in match.groups()[:4])
            seconds = float(match.group(5) or 0)
            try:
                duration = timedelta(
                    weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds
                )
            except OverflowError:
                duration = None
    if duration is None or not timedelta(0) <= duration <= MAX_COOLING_OFF:
        raise ValueError(COOLING_OFF_RULE)
    return duration


CoolingOffDuration = Annotated[timedelta, BeforeValidator(parse_cooling_off)]
"""`DeletionPolicy.cooling_off` and the API's `{"cooling_off": "P15D"}`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Notice(StrEnum):
    """The messages of a cooling-off, each sent at most once per window (outbox idempotency
    key `cooling-off-<notice>-<window_id>`)."""

    STARTED = "started"
    """The window began: the date purging starts, and how to restore the account."""
    REMINDER = "reminder"
    """A day before the end (not for windows shorter than two days)."""
    RESTORED = "restored"
    """The account was restored: nothing was deleted."""


class CoolingOffWindow(_Model):
    """A run's cooling-off, carried into the next run when a long window continues as new."""

    window_id: str
    """Chosen by the workflow when the window starts: the notices' idempotency keys."""
    ends_at: datetime
    """When the window ends: the last check, then purging (the point of no return)."""
    notified: list[Notice] = []
    """Notices already sent, given up on, or not for this window (no reminder in a window
    shorter than two days): a continued run does not send them again."""
    over: bool = False
    """The window has ended and its last check found new tasks: the account stays frozen and
    purging follows the next clean check, without a second window."""


class NoticeInput(_Model):
    """Records one cooling-off notice in the outbox (the activity writes its words)."""

    account_id: str
    workflow_id: str
    window_id: str
    notice: Notice
    purge_starts_at: datetime


def notice_key(notice: Notice, window_id: str) -> str:
    """The outbox idempotency key of a window's notice: one message per notice and window."""
    return f"cooling-off-{notice.value}-{window_id}"
