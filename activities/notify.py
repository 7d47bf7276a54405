"""Notifications to customers: the outbox row, and the notifier that delivers it.

`log` writes the message to the dev console (the stand-in for a phone in `dev`, and only
there: it puts every code in the logs); `webhook` POSTs it to an SMS/email gateway, signed the
Standard Webhooks way when it has a secret, and counts as delivered only on a 2xx answer.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TextIO

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from accounts.identifiers import mask_email, mask_phone
from contract.errors import NOTIFICATION_EXPIRED, UNKNOWN_NOTIFICATION
from contract.models import DeliverNotificationInput
from core.webhooks import signature_headers
from core.webhooks import webhook_signer as webhook_signer  # re-exported: its home was here
from store.db import Connection


@dataclass(frozen=True)
class Message:
    notification_id: str
    account_id: str
    channel: str
    """`email` or `sms`."""
    to: str
    body: str


class Notifier(Protocol):
    async def deliver(self, message: Message) -> None:
        """Delivers the message or raises; it may be called again for the same message."""


def contact_channel(email: str | None, phone: str | None) -> tuple[str, str | None]:
    """Email when the account has one (it can carry a longer message), otherwise SMS."""
    return ("email", email) if email else ("sms", phone)


def masked(channel: str, recipient: str) -> str:
    return mask_email(recipient) if channel == "email" else mask_phone(recipient)


class LogNotifier:
    """The development inbox: messages go to the console, recipients masked."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def deliver(self, message: Message) -> None:
        stream = self._stream or sys.stderr
        stream.write(
            f"\n[dev inbox] {message.channel} to {masked(message.channel, message.to)}:"
            f"\n[dev inbox]   {message.body}\n\n"
        )
        stream.flush()


class DeliveryFailed(Exception):
    """The gateway did not accept the message; the activity retries."""


class WebhookNotifier:
    """POSTs `{notification_id, account_id, channel, to, body}` to the gateway.

    With a secret, every request carries the Standard Webhooks headers: `webhook-id` (the
    notification id, the same on every retry, so that the gateway can drop duplicates),
    `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`.
    """

    def __init__(
        self, url: str, client: httpx.AsyncClient | None = None, *, secret: str | None = None
    ) -> None:
        self._url = url
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._signer = webhook_signer(secret) if secret is not None else None

    async def deliver(self, message: Message) -> None:
        payload = {
            "notification_id": message.notification_id,
            "account_id": message.account_id,
            "channel": message.channel,
            "to": message.to,
            "body": message.body,
        }
        body = json.dumps(payload, separators=(",", ":"))
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.notification_id}
        if self._signer is not None:
            headers |= signature_headers(self._signer, message.notification_id, body)
        try:
            response = await self._client.post(self._url, content=body.encode(), headers=headers)
        except httpx.HTTPError as error:
            # The message names the error's kind only: the request holds the recipient.
            raise DeliveryFailed(f"gateway unreachable ({type(error).__name__})") from None
        if not response.is_success:
            raise DeliveryFailed(f"gateway answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()


NOTIFICATION_TTL = timedelta(days=1)
"""How long an undelivered message keeps its recipient and body: then it expires, cleared."""


async def scrub_undelivered(conn: Connection, account_id: str, reason: str) -> int:
    """Clears recipient and body of the account's messages not delivered (delivered ones hold
    neither): once the account is deleted, none of them may keep its email or phone."""
    return _count(
        await conn.execute(
            """
            update notification_outbox set recipient = null, body = null, last_error = $2
            where account_id = $1 and delivered_at is null
              and (recipient is not null or body is not null)
            """,
            account_id,
            reason,
        )
    )


async def expire_undelivered(conn: Connection) -> int:
    """Clears the messages of deleted accounts left undelivered for longer than the TTL (a
    confirmation whose deliverer gave up, or died on its last attempt)."""
    return _count(
        await conn.execute(
            """
            update notification_outbox o set recipient = null, body = null,
                last_error = 'expired undelivered'
            from accounts a
            where a.account_id = o.account_id and a.status = 'deleted'
              and o.delivered_at is null and o.created_at < now() - $1::interval
              and (o.recipient is not null or o.body is not null)
            """,
            NOTIFICATION_TTL,
        )
    )


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def notification_id_for(idempotency_key: str) -> str:
    """The same message always gets the same id, so that gateways can drop duplicates."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"account-deletion:{idempotency_key}"))


async def record_outgoing(
    conn: Connection,
    *,
    idempotency_key: str,
    account_id: str,
    channel: str,
    recipient: str,
    template: str,
    body: str | None,
) -> str:
    """Writes (or finds) the outbox row; `body` is None when it holds a secret."""
    notification_id = notification_id_for(idempotency_key)
    await conn.execute(
        """
        insert into notification_outbox
            (notification_id, idempotency_key, account_id, channel, recipient, template, body)
        values ($1, $2, $3, $4, $5, $6, $7)
        on conflict (idempotency_key) do update
            set recipient = excluded.recipient, body = excluded.body, delivered_at = null
        """,
        uuid.UUID(notification_id),
        idempotency_key,
        account_id,
        channel,
        recipient,
        template,
        body,
    )
    return notification_id


async def deliver_recorded(pool: asyncpg.Pool, notifier: Notifier, message: Message) -> None:
    """Delivers an outbox message and records the outcome; clears recipient and body after."""
    notification_id = uuid.UUID(message.notification_id)
    try:
        await notifier.deliver(message)
    except Exception as error:
        await pool.execute(
            "update notification_outbox set attempts = attempts + 1, last_error = $2 "
            "where notification_id = $1",
            notification_id,
            str(error)[:500] if isinstance(error, DeliveryFailed) else type(error).__name__,
        )
        raise
    await pool.execute(
        """
        update notification_outbox
        set attempts = attempts + 1, delivered_at = now(), last_error = null,
            recipient = null, body = null
        where notification_id = $1
        """,
        notification_id,
    )


class NotificationActivities:
    def __init__(self, pool: asyncpg.Pool, notifier: Notifier) -> None:
        self._pool = pool
        self._notifier = notifier

    @activity.defn
    async def deliver_notification(self, request: DeliverNotificationInput) -> bool:
        """Delivers an outbox message that holds its body; retried until the gateway accepts.

        Returns False when it had been delivered already (a retry after success).
        """
        row = await self._pool.fetchrow(
            """
            select notification_id, account_id, channel, recipient, body, delivered_at,
                   created_at < now() - $2::interval as expired
            from notification_outbox where idempotency_key = $1
            """,
            request.idempotency_key,
            NOTIFICATION_TTL,
        )
        if row is None:
            raise ApplicationError(
                "no such notification", type=UNKNOWN_NOTIFICATION, non_retryable=True
            )
        if row["delivered_at"] is not None:
            return False
        if row["expired"] or row["recipient"] is None or row["body"] is None:
            await self._expire(row["notification_id"])
        message = Message(
            str(row["notification_id"]),
            row["account_id"],
            row["channel"],
            row["recipient"],
            row["body"],
        )
        try:
            await deliver_recorded(self._pool, self._notifier, message)
        except Exception:
            if _last_attempt():
                # No attempt can follow before the deadline: the message does not keep the
                # recipient beyond it.
                await self._expire(row["notification_id"])
            raise
        return True

    async def _expire(self, notification_id: uuid.UUID) -> None:
        await self._pool.execute(
            """
            update notification_outbox
            set recipient = null, body = null, last_error = 'expired undelivered'
            where notification_id = $1 and delivered_at is null
            """,
            notification_id,
        )
        raise ApplicationError(
            "the notification expired undelivered; its recipient was cleared",
            type=NOTIFICATION_EXPIRED,
            non_retryable=True,
        )


def _last_attempt() -> bool:
    """Whether this attempt is the last one that can run before the schedule-to-close deadline
    (the next would start only after it, with less than a start-to-close left)."""
    info = activity.info()
    if info.schedule_to_close_timeout is None:
        return False
    deadline = info.scheduled_time + info.schedule_to_close_timeout
    return datetime.now(UTC) + (info.start_to_close_timeout or timedelta()) >= deadline
