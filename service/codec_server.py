"""The codec server: the Temporal UI and CLI show decrypted payloads through it.

Served by the API process under /codec, with the codec of the API's own Temporal client (so
it reads exactly what the workers write):

- `POST /codec/decode` and `POST /codec/encode` take and return `{"payloads": [...]}` in the
  protobuf JSON form (the remote codec protocol of the Temporal UI and CLI: they call
  `<endpoint>/decode` and `<endpoint>/encode`, with the endpoint `http(s)://<api>/codec`).
- CORS only for the Temporal UI's origin(s) (CODEC_CORS_ORIGINS, by default the embedded UI):
  a preflight from any other origin is refused, and so is a call that carries another Origin.

Decoding shows codes and PII, so every call is authenticated, in one of three ways:

1. `Authorization: Bearer <API_TOKEN or CODEC_TOKEN>`: the CLI (`--codec-auth`), scripts, and
   a UI that forwards an access token (TEMPORAL_CODEC_PASS_ACCESS_TOKEN) equal to one of them.
2. A session cookie for a browser whose UI cannot send a token (no SSO in front of it): sign in
   once at `/codec/session` with one of the tokens; the cookie is HttpOnly, SameSite=Strict,
   scoped to /codec, signed and valid for 8 hours, and the UI sends it when it includes
   credentials (TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true, or the UI's codec settings).
3. Only under `dev` (CODEC_TRUST_LOCAL_UI): a call from a loopback address whose Origin is an
   allowed UI origin needs nothing more. The embedded dev server's UI has no login and cannot
   send a token or hold our cookie; browsers set Origin themselves, so another web page cannot
   pass for the UI, and every process on the machine that could forge the header can also
   read DATA_DIR, where the dev stack keeps its API token and payload key.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import secrets
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.converter import PayloadCodec

from core.codec import CodecError
from core.config import ConfigurationError, Settings

CODEC_PATH = "/codec"
SESSION_COOKIE = "codec_session"
SESSION_SECONDS = 8 * 3600
ALLOWED_HEADERS = "authorization, content-type, x-namespace"
"""What the UI sends: its JSON body, the namespace, and the access token when configured."""
PREFLIGHT_MAX_AGE = "600"


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


class _Sessions:
    """Signed, expiring browser sessions: `<expiry>.<hmac>`, nothing else to store."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        return f"{expires}.{self._sign(expires)}"

    def valid(self, value: str, now: float | None = None) -> bool:
        expires, _, signature = value.partition(".")
        if not expires.isdigit() or int(expires) <= (now or time.time()):
            return False
        return hmac.compare_digest(signature, self._sign(int(expires)))

    def _sign(self, expires: int) -> str:
        return hmac.new(self._key, f"codec-session:{expires}".encode(), hashlib.sha256).hexdigest()


def mount_codec_server(app: FastAPI, settings: Settings) -> None:
    """Adds /codec/encode, /codec/decode and the /codec/session sign-in page to the API."""
    if not settings.api_token:
        raise ConfigurationError("API_TOKEN is not set: the codec server needs it")
    origins = allowed_origins(settings)
    tokens = [settings.api_token.encode()]
    if settings.codec_token is not None and settings.codec_token.get_secret_value():
        tokens.append(settings.codec_token.get_secret_value().encode())
    sessions = _Sessions(hashlib.sha256(b"codec-sessions:" + settings.link_secret()).digest())

    def valid_token(candidate: str) -> bool:
        given = candidate.strip().encode()
        # Compared with every token, so that timing tells nothing about which one.
        matches = [secrets.compare_digest(given, token) for token in tokens]
        return bool(given) and any(matches)

    def authorized(request: Request, origin: str | None) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and valid_token(credentials):
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None and sessions.valid(cookie):
            return True
        return (
            settings.codec_trust_local_ui
            and origin is not None
            and origin in origins
            and _is_loopback(request)
        )

    def cors(origin: str | None) -> dict[str, str]:
        headers = {"Vary": "Origin"}
        if origin is not None and origin in origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    async def preflight(request: Request) -> Response:
        origin = request.headers.get("origin")
        method = request.headers.get("access-control-request-method", "")
        if origin is None or origin not in origins or method.upper() != "POST":
            return _problem(403, "origin_not_allowed", "CORS is open to the Temporal UI only")
        return Response(
            status_code=204,
            headers={
                **cors(origin),
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            },
        )

    async def apply(request: Request, operation: Literal["encode", "decode"]) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return _problem(403, "origin_not_allowed", "CORS is open to the Temporal UI only")
        headers = cors(origin)
        if not authorized(request, origin):
            response = _problem(
                401,
                "unauthorized",
                "a bearer token (API_TOKEN or CODEC_TOKEN) or a codec session is required",
                headers,
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        codec = _codec_of(request)
        if codec is None:
            return _problem(503, "codec_unavailable", "this process has no payload codec", headers)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _problem(415, "unsupported_media_type", "send application/json", headers)
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError):
            return _problem(400, "invalid_request", 'the body must be {"payloads": [...]}', headers)
        try:
            if operation == "encode":
                result = await codec.encode(list(payloads.payloads))
            else:
                result = await codec.decode(list(payloads.payloads))
        except CodecError as error:
            return _problem(422, "undecodable_payload", str(error), headers)
        return Response(_payloads_json(result), media_type="application/json", headers=headers)

    async def encode(request: Request) -> Response:
        return await apply(request, "encode")

    async def decode(request: Request) -> Response:
        return await apply(request, "decode")

    async def session_page(request: Request) -> Response:
        signed_in = (cookie := request.cookies.get(SESSION_COOKIE)) is not None and sessions.valid(
            cookie
        )
        return _session_page(signed_in=signed_in)

    async def sign_in(request: Request) -> Response:
        form = await request.form()
        token = form.get("token")
        if not isinstance(token, str) or not valid_token(token):
            return _session_page(signed_in=False, error="that token is not valid", status=401)
        response = _session_page(signed_in=True)
        response.set_cookie(
            SESSION_COOKIE,
            sessions.issue(),
            max_age=SESSION_SECONDS,
            path=CODEC_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    for name, endpoint in (("encode", encode), ("decode", decode)):
        app.add_route(f"{CODEC_PATH}/{name}", endpoint, methods=["POST"], include_in_schema=False)
        app.add_route(
            f"{CODEC_PATH}/{name}", preflight, methods=["OPTIONS"], include_in_schema=False
        )
    app.add_route(f"{CODEC_PATH}/session", session_page, methods=["GET"], include_in_schema=False)
    app.add_route(f"{CODEC_PATH}/session", sign_in, methods=["POST"], include_in_schema=False)


def _codec_of(request: Request) -> PayloadCodec | None:
    client: Client | None = getattr(request.app.state, "client", None)
    return None if client is None else client.data_converter.payload_codec


def _is_loopback(request: Request) -> bool:
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def _payloads_json(payloads: list[Payload]) -> str:
    body: dict[str, Any] = {"payloads": [json_format.MessageToDict(p) for p in payloads]}
    return json.dumps(body)


def _problem(
    status_code: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message}, status_code=status_code, headers=headers
    )


def _session_page(*, signed_in: bool, error: str | None = None, status: int = 200) -> HTMLResponse:
    if signed_in:
        body = (
            "<p>Signed in: this browser may decode Temporal payloads for 8 hours.</p>"
            "<p>In the Temporal UI, the codec endpoint must be this server's "
            f"<code>{CODEC_PATH}</code> with <em>include cross-origin credentials</em> on "
            "(TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true).</p>"
        )
    else:
        body = (
            (f'<p role="alert">{html.escape(error)}</p>' if error else "")
            + f'<form method="post" action="{CODEC_PATH}/session">'
            '<label>API or codec token <input type="password" name="token" required '
            'autocomplete="off"></label> <button type="submit">Sign in</button></form>'
        )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Codec server sign-in</title></head><body>"
        "<h1>account-deletion codec server</h1>" + body + "</body></html>"
    )
    return HTMLResponse(
        page,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        },
    )
