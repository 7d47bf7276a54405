"""Who may call the codec server: its tokens, its browser sessions and the UI's origins.

Decoding shows codes and PII, so every call is authenticated, in one of three ways:

1. `Authorization: Bearer <API_TOKEN or CODEC_TOKEN>`: the CLI (`--codec-auth`), scripts, and
   a UI that forwards an access token (TEMPORAL_CODEC_PASS_ACCESS_TOKEN) equal to one of them.
2. A session cookie for a browser whose UI cannot send a token (no SSO in front of it): sign in
   once at `/codec/session` with one of the tokens; the cookie is HttpOnly, SameSite=Strict,
   scoped to /codec, signed and valid for 8 hours, and the UI sends it when it includes
   credentials (TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true, or the UI's codec settings).
3. Only under `dev`: the UI's secret in the path, `/codec/<secret>/decode`. The embedded dev
   server's UI has no login and cannot send a token or hold our cookie, so `dev` makes a
   random secret at every start and gives it to that UI alone, in its codec endpoint
   (`--ui-codec-endpoint <api>/codec/<secret>`); it is not a setting, so no deployment can
   switch it on. Neither an address nor an Origin is trusted: any local process can send
   any Origin. (The dev server's UI serves its own settings, endpoint included, to whoever
   reaches its port on this machine, as it serves the workflows themselves: the secret keeps
   out whoever cannot reach the UI.)

CORS is open only to the Temporal UI's origin(s) (CODEC_CORS_ORIGINS, by default the embedded
UI). `create_app` builds one `CodecAccess` from the settings and keeps it on `app.state`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from fastapi import Request

from core.config import ConfigurationError, Settings

CODEC_PATH = "/codec"
SESSION_COOKIE = "codec_session"
SESSION_SECONDS = 8 * 3600


def allowed_origins(settings: Settings) -> frozenset[str]:
    """CODEC_CORS_ORIGINS, or the embedded UI's origins when unset."""
    if settings.codec_cors_origins:
        origins = {
            origin.strip().rstrip("/")
            for origin in settings.codec_cors_origins.split(",")
            if origin.strip()
        }
        if "*" in origins or "null" in origins:
            raise ConfigurationError(
                "CODEC_CORS_ORIGINS must name the Temporal UI's origins, not '*' or 'null'"
            )
        return frozenset(origins)
    port = settings.temporal_ui_port
    return frozenset({f"http://127.0.0.1:{port}", f"http://localhost:{port}"})


class Sessions:
    """Signed, expiring browser sessions: `<expiry>.<hmac>`, nothing else to store."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        return f"{expires}.{self._sign(expires)}"

    def valid(self, value: str, now: float | None = None) -> bool:
        expires, _, signature = value.partition(".")
        # ASCII digits only ("²" is a digit to `isdigit` but not to `int`), and the signature
        # compared as bytes (`compare_digest` refuses a str with non-ASCII characters).
        if not (expires.isascii() and expires.isdigit()) or int(expires) <= (now or time.time()):
            return False
        return hmac.compare_digest(signature.encode(), self._sign(int(expires)).encode())

    def _sign(self, expires: int) -> str:
        return hmac.new(self._key, f"codec-session:{expires}".encode(), hashlib.sha256).hexdigest()


class CodecAccess:
    """The codec server's tokens, sessions and allowed origins, read from the settings once."""

    def __init__(self, settings: Settings, *, ui_secret: str | None = None) -> None:
        if not settings.api_token:
            raise ConfigurationError("API_TOKEN is not set: the codec server needs it")
        self.origins = allowed_origins(settings)
        self._tokens = [settings.api_token.encode()]
        if settings.codec_token is not None and settings.codec_token.get_secret_value():
            self._tokens.append(settings.codec_token.get_secret_value().encode())
        self.sessions = Sessions(
            hashlib.sha256(b"codec-sessions:" + settings.link_secret()).digest()
        )
        self._ui_secret = ui_secret.encode() if ui_secret else None

    def valid_token(self, candidate: str) -> bool:
        given = candidate.strip().encode()
        # Compared with every token, so that timing tells nothing about which one.
        matches = [secrets.compare_digest(given, token) for token in self._tokens]
        return bool(given) and any(matches)

    def signed_in(self, request: Request) -> bool:
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and self.sessions.valid(cookie)

    def valid_ui_secret(self, candidate: str) -> bool:
        """The secret `dev` put in its UI's codec endpoint path (none outside `dev`)."""
        if self._ui_secret is None:
            return False
        return secrets.compare_digest(candidate.encode(), self._ui_secret)

    def authorized(self, request: Request, ui_secret: str | None = None) -> bool:
        """A valid bearer token, a signed-in session, or (dev) the UI's secret from the path."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.valid_token(credentials):
            return True
        if self.signed_in(request):
            return True
        return ui_secret is not None and self.valid_ui_secret(ui_secret)

    def cors(self, origin: str | None) -> dict[str, str]:
        headers = {"Vary": "Origin"}
        if origin is not None and origin in self.origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers
