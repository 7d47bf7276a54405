"""`Idempotency-Key` on the API's POST verbs: a repeated request has the effect of one and gets
the same answer.

A console that retries after a timeout does not know whether its first request arrived. With
the header, the first answer (a 2xx) is stored in `idempotency_keys` under (key, route,
account) and a repeat gets it back without acting again; a repeat while the first is still
being handled gets a 409 `idempotency_key_in_use`; the same key with another body a 422
`idempotency_key_reused`. An error answer is not stored: nothing happened, so a repeat acts
(and may succeed, e.g. once a resend's wait is over). Keys live a day.

The code (`POST .../verification`) is the exception: its key is the id of the Temporal update
that checks the code (`DeletionClient.verify`), which Temporal runs once per id and run and
whose result it answers again, so the attempt is counted once even if the API crashed between
the check and its answer; no code, nor anything derived from one, is stored here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

import asyncpg
from fastapi import Depends, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from service.api.problems import InvalidIdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
LIFETIME = timedelta(days=1)


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="Makes a retry of this request safe: a repeat with the same key gets "
            "the first answer and acts no more (1 to 255 printable ASCII characters).",
        ),
    ] = None,
) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise InvalidIdempotencyKey(
            "invalid_idempotency_key",
            f"the {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
        )
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


class Idempotency:
    """Stores and replays the answers of keyed requests; `secret` keys the body fingerprints."""

    def __init__(self, pool: asyncpg.Pool, secret: bytes) -> None:
        self._pool = pool
        self._secret = hashlib.sha256(b"idempotency-fingerprint:" + secret).digest()

    def fingerprint(self, body: BaseModel | None) -> str:
        canonical = json.dumps(jsonable_encoder(body) if body is not None else None, sort_keys=True)
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).hexdigest()

    async def answer(
        self,
        key: str | None,
        *,
        route: str,
        scope: str,
        body: BaseModel | None,
        status_code: int,
        act: Callable[[], Awaitable[BaseModel]],
    ) -> Response:
        """`act()`'s answer with `status_code`; with a key, the stored answer of its first use."""
        if key is None:
            return _json(status_code, await act())
        fingerprint = self.fingerprint(body)
        ident = (key, route, scope)
        async with self._pool.acquire() as conn:
            await conn.execute(
                "delete from idempotency_keys where key = $1 and route = $2 and scope = $3"
                " and created_at < now() - $4::interval",
                *ident,
                LIFETIME,
            )
            claimed = await conn.fetchval(
                "insert into idempotency_keys (key, route, scope, fingerprint)"
                " values ($1, $2, $3, $4) on conflict do nothing returning true",
                *ident,
                fingerprint,
            )
            if not claimed:
                stored = await conn.fetchrow(
                    "select fingerprint, status_code, response from idempotency_keys"
                    " where key = $1 and route = $2 and scope = $3",
                    *ident,
                )
                return _replay(stored, fingerprint)
        try:
            result = await act()
        except BaseException:
            # Nothing was done (or it is unknown): the key is free for the retry.
            await self._pool.execute(
                "delete from idempotency_keys where key = $1 and route = $2 and scope = $3", *ident
            )
            raise
        content = jsonable_encoder(result)
        await self._pool.execute(
            "update idempotency_keys set status_code = $4, response = $5"
            " where key = $1 and route = $2 and scope = $3",
            *ident,
            status_code,
            content,
        )
        return JSONResponse(content, status_code=status_code)


def _replay(row: asyncpg.Record | None, fingerprint: str) -> Response:
    if row is None:  # the first request failed and freed the key meanwhile
        raise InvalidIdempotencyKey(
            "idempotency_key_in_use", "a request with this key was just handled: retry"
        )
    if not hmac.compare_digest(row["fingerprint"].encode(), fingerprint.encode()):
        raise InvalidIdempotencyKey(
            "idempotency_key_reused",
            f"this {HEADER} was used with another request body: use a new key",
        )
    if row["status_code"] is None:
        raise InvalidIdempotencyKey(
            "idempotency_key_in_use",
            f"a request with this {HEADER} is still being handled: retry later",
        )
    return JSONResponse(row["response"], status_code=row["status_code"])


def _json(status_code: int, result: BaseModel) -> Response:
    return JSONResponse(jsonable_encoder(result), status_code=status_code)
