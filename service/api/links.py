"""Signed, expiring links to the verification page, bound to one deletion run.

The account id alone cannot open the page: the link carries an HMAC over the account, the
run and the expiry, made with a server secret. A link from an earlier (cancelled) deletion of
the same account does not open a later one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidLink(Exception):
    """Tampered, malformed or expired: the page says so without telling which."""


@dataclass(frozen=True)
class LinkClaims:
    account_id: str
    run_id: str
    expires_at: int


class LinkSigner:
    def __init__(self, secret: bytes, *, lifetime_seconds: int = 24 * 3600) -> None:
        if len(secret) < 16:
            raise ValueError("the link secret must be at least 16 bytes")
        self._secret = secret
        self._lifetime = lifetime_seconds

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def sign(self, account_id: str, run_id: str, *, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self._lifetime)
        payload = _b64(json.dumps([account_id, run_id, expires]).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, link: str, *, now: float | None = None) -> LinkClaims:
        payload, _, mac = link.partition(".")
        # Compared as bytes: `compare_digest` refuses a str with non-ASCII characters (a
        # TypeError, which was a 500), and a link is whatever the path holds.
        if not mac or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise InvalidLink()
        try:
            account_id, run_id, expires = json.loads(_unb64(payload))
        except ValueError:
            raise InvalidLink() from None
        if expires < (now if now is not None else time.time()):
            raise InvalidLink()
        return LinkClaims(str(account_id), str(run_id), int(expires))
