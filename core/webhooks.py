"""Standard Webhooks signing, shared by every signed request the product sends or receives:
the notification gateway, the console backend's stage events, `http` products' deletion APIs
and their callbacks.

Headers `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.content">` under a `whsec_<base64>` secret (the `standardwebhooks` package). The
content of a POST is its body; a GET has none, so its content is the request target (path and
query as sent), which binds the signature to the URL: a captured GET cannot be replayed
against another account or deletion.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
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


def signature_headers(signer: Webhook, message_id: str, content: str) -> dict[str, str]:
    """The three Standard Webhooks headers of one message, signed now."""
    sent_at = datetime.fromtimestamp(int(time.time()), UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signer.sign(message_id, sent_at, content),
    }


class SignedClient:
    """Signed requests to a product's API, each with a fresh `webhook-id` (a message of its
    own: the product may drop any id it has seen; retries are recognised by the body's ids).
    The secret is the product's, already checked when the catalog was loaded."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, url: str, secret: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload, separators=(",", ":"))
        headers = signature_headers(Webhook(secret), _message_id(), body)
        headers["Content-Type"] = "application/json"
        return await self.http.post(url, content=body.encode(), headers=headers)

    async def get(
        self, url: str, secret: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        request = self.http.build_request("GET", url, params=params)
        target = request.url.raw_path.decode("ascii")  # path and query, as sent
        request.headers.update(signature_headers(Webhook(secret), _message_id(), target))
        return await self.http.send(request)

    async def aclose(self) -> None:
        await self.http.aclose()


def _message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"
