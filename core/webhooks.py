"""Standard Webhooks signing, shared by every request this product signs: the notification
gateway (NOTIFY_WEBHOOK_SECRET) and the console backend's stage events (EVENTS_WEBHOOK_SECRET).

A request carries `webhook-id` (the same on every retry of one message, so that the receiver
can drop duplicates), `webhook-timestamp` (seconds, when this attempt was signed) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret's key.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC, datetime

from standardwebhooks import Webhook

from core.config import ConfigurationError

WEBHOOK_SECRET_PREFIX = "whsec_"


def webhook_signer(secret: str, setting: str = "NOTIFY_WEBHOOK_SECRET") -> Webhook:
    """The signer of a `whsec_<base64>` secret (the `standardwebhooks` package), checked first:
    that package decodes any text leniently, and a typo must not become a different key."""
    encoded = secret.strip().removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.strip().startswith(WEBHOOK_SECRET_PREFIX) or not 24 <= len(key) <= 64:
        raise ConfigurationError(
            f"{setting} must be {WEBHOOK_SECRET_PREFIX} followed by the base64 of 24 to 64"
            " random bytes"
        )
    return Webhook(key)


def signature_headers(signer: Webhook, message_id: str, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt to deliver `body`."""
    sent_at = datetime.fromtimestamp(int(time.time()), UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signer.sign(message_id, sent_at, body),
    }
