"""The cooling-off's notices to the account's owner, written into the notification outbox
(`activities.notify`); `deliver_notification` delivers them by their idempotency key."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from temporalio import activity

from activities.notify import contact_channel, notification_id_for
from contract.cooling_off import Notice, NoticeInput, notice_key

RESTORE_HOW = "open the deletion in the console and choose Restore my account"


def notice_body(notice: Notice, purge_starts_at: datetime) -> str:
    """The words of a notice: no link (links are credentials), the date in UTC."""
    when = f"{purge_starts_at:%d %B %Y at %H:%M} UTC"
    match notice:
        case Notice.STARTED:
            return (
                f"Your cloud account is frozen and will be deleted on {when}. Until then you can"
                f" change your mind: {RESTORE_HOW}. After that date its data is purged from"
                " every product and the deletion cannot be undone."
            )
        case Notice.REMINDER:
            return (
                f"Your cloud account will be deleted tomorrow, on {when}. To keep it, {RESTORE_HOW}"
                " before then."
            )
        case Notice.RESTORED:
            return (
                "Your cloud account has been restored: the deletion was stopped and nothing was"
                " deleted. Sign in again to use it (earlier sessions and API keys stay revoked)."
            )


class CoolingOffActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def record_cooling_off_notice(self, request: NoticeInput) -> bool:
        """Writes the notice into the outbox once per window: a retry, or a continued run that
        asks again, finds it there (delivered or not) and changes nothing. False when there is
        no one to tell (no email nor phone, or the account is gone)."""
        key = notice_key(request.notice, request.window_id)
        account = await self._pool.fetchrow(
            "select status, email, phone from accounts where account_id = $1", request.account_id
        )
        if account is None or account["status"] == "deleted":
            return False
        channel, recipient = contact_channel(account["email"], account["phone"])
        if not recipient:
            return False
        await self._pool.execute(
            """
            insert into notification_outbox
                (notification_id, idempotency_key, account_id, channel, recipient, template, body)
            values ($1, $2, $3, $4, $5, $6, $7)
            on conflict (idempotency_key) do nothing
            """,
            uuid.UUID(notification_id_for(key)),
            key,
            request.account_id,
            channel,
            recipient,
            f"cooling_off_{request.notice.value}",
            notice_body(request.notice, request.purge_starts_at),
        )
        activity.logger.info("cooling-off notice %s recorded", request.notice.value)
        return True
