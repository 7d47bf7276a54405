"""The codec server: the Temporal UI and CLI show decrypted payloads through it.

Served by the API process under /codec, with the codec of the API's own Temporal client (so
it reads exactly what the workers write):

- `POST /codec/decode` and `POST /codec/encode` take and return `{"payloads": [...]}` in the
  protobuf JSON form (the remote codec protocol of the Temporal UI and CLI: they call
  `<endpoint>/decode` and `<endpoint>/encode`, with the endpoint `http(s)://<api>/codec`).
- CORS only for the Temporal UI's origin(s): a preflight from any other origin is refused,
  and so is a call that carries another Origin.
- `GET /codec/session` and `POST /codec/session`: the sign-in page for a browser session.
- Under `dev` only, `POST /codec/<secret>/decode` and `/encode`: the embedded UI's endpoint,
  whose path holds the secret `dev` made for it at start (`create_app(ui_codec_secret=...)`).

Who may call it, and how, is in `service.api.codec_access`.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

import html
import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.converter import PayloadCodec

from core.codec import CodecError
from service.api.codec_access import CODEC_PATH, SESSION_COOKIE, SESSION_SECONDS, CodecAccess
from service.api.deps import CodecAccessDep
from service.api.problems import problem

ALLOWED_HEADERS = "authorization, content-type, x-namespace"
"""What the UI sends: its JSON body, the namespace, and the access token when configured."""
PREFLIGHT_MAX_AGE = "600"

router = APIRouter(prefix=CODEC_PATH, include_in_schema=False)


async def preflight(request: Request, access: CodecAccessDep) -> Response:
    """The browser's CORS preflight: allowed for the Temporal UI's origins, for POST only."""
    origin = request.headers.get("origin")
    method = request.headers.get("access-control-request-method", "")
    if origin is None or origin not in access.origins or method.upper() != "POST":
        return problem(403, "origin_not_allowed", "CORS is open to the Temporal UI only")
    return Response(
        status_code=204,
        headers={
            **access.cors(origin),
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        },
    )


@router.post("/encode")
async def encode(request: Request, access: CodecAccessDep) -> Response:
    return await _apply(request, access, "encode")


router.add_api_route("/encode", preflight, methods=["OPTIONS"])


@router.post("/decode")
async def decode(request: Request, access: CodecAccessDep) -> Response:
    return await _apply(request, access, "decode")


router.add_api_route("/decode", preflight, methods=["OPTIONS"])


@router.post("/{ui_secret}/encode")
async def encode_for_dev_ui(request: Request, access: CodecAccessDep, ui_secret: str) -> Response:
    return await _apply(request, access, "encode", ui_secret)


router.add_api_route("/{ui_secret}/encode", preflight, methods=["OPTIONS"])


@router.post("/{ui_secret}/decode")
async def decode_for_dev_ui(request: Request, access: CodecAccessDep, ui_secret: str) -> Response:
    return await _apply(request, access, "decode", ui_secret)


router.add_api_route("/{ui_secret}/decode", preflight, methods=["OPTIONS"])


# HEAD as well: Starlette answers it for every GET route it serves directly.
@router.api_route("/session", methods=["GET", "HEAD"])
async def session_page(request: Request, access: CodecAccessDep) -> Response:
    return _session_page(signed_in=access.signed_in(request))


@router.post("/session")
async def sign_in(request: Request, access: CodecAccessDep) -> Response:
    form = await request.form()
    token = form.get("token")
    if not isinstance(token, str) or not access.valid_token(token):
        return _session_page(signed_in=False, error="that token is not valid", status=401)
    response = _session_page(signed_in=True)
    response.set_cookie(
        SESSION_COOKIE,
        access.sessions.issue(),
        max_age=SESSION_SECONDS,
        path=CODEC_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def _apply(
    request: Request,
    access: CodecAccess,
    operation: Literal["encode", "decode"],
    ui_secret: str | None = None,
) -> Response:
    origin = request.headers.get("origin")
    if origin is not None and origin not in access.origins:
        return problem(403, "origin_not_allowed", "CORS is open to the Temporal UI only")
    headers = access.cors(origin)
    if not access.authorized(request, ui_secret):
        response = problem(
            401,
            "unauthorized",
            "a bearer token (API_TOKEN or CODEC_TOKEN) or a codec session is required",
            headers,
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    codec = _codec_of(request)
    if codec is None:
        return problem(503, "codec_unavailable", "this process has no payload codec", headers)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return problem(415, "unsupported_media_type", "send application/json", headers)
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except (json_format.ParseError, UnicodeDecodeError):
        return problem(400, "invalid_request", 'the body must be {"payloads": [...]}', headers)
    try:
        if operation == "encode":
            result = await codec.encode(list(payloads.payloads))
        else:
            result = await codec.decode(list(payloads.payloads))
    except CodecError as error:
        return problem(422, "undecodable_payload", str(error), headers)
    return Response(_payloads_json(result), media_type="application/json", headers=headers)


def _codec_of(request: Request) -> PayloadCodec | None:
    client: Client | None = getattr(request.app.state, "client", None)
    return None if client is None else client.data_converter.payload_codec


def _payloads_json(payloads: list[Payload]) -> str:
    body: dict[str, Any] = {"payloads": [json_format.MessageToDict(p) for p in payloads]}
    return json.dumps(body)


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
