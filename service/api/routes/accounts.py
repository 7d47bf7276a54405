"""`POST /v1/accounts`: registers an account for the console backend.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from accounts.registration import RegisteredAccount, RegistrationRequest, register_account
from service.api.deps import IdempotencyStore, Pool, require_token
from service.api.idempotency import IdempotencyKey
from service.api.problems import PROBLEMS

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    dependencies=[Depends(require_token)],
    responses=PROBLEMS,
)


@router.post(
    "",
    status_code=201,
    response_model=RegisteredAccount,
    responses={409: {**PROBLEMS[409], "description": "an identifier is taken"}},
)
async def register(
    body: RegistrationRequest, pool: Pool, store: IdempotencyStore, key: IdempotencyKey
) -> Response:
    """Registers an account; 409 while any of its identifiers is held by another account.
    A repeat with the same `Idempotency-Key` gets the first answer and registers nothing."""

    async def act() -> RegisteredAccount:
        return await register_account(pool, body)

    return await store.answer(
        key, route="POST /v1/accounts", scope="accounts", body=body, status_code=201, act=act
    )
