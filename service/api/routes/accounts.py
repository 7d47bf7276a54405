"""`POST /v1/accounts`: registers an account for the console backend.

(No `from __future__ import annotations`: FastAPI evaluates these annotations.)
"""

from fastapi import APIRouter, Depends

from accounts.registration import RegisteredAccount, RegistrationRequest, register_account
from service.api.deps import Pool, require_token
from service.api.problems import PROBLEMS, Problem

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    dependencies=[Depends(require_token)],
    responses=PROBLEMS,
)


@router.post(
    "",
    status_code=201,
    responses={409: {"model": Problem, "description": "an identifier is taken"}},
)
async def register(body: RegistrationRequest, pool: Pool) -> RegisteredAccount:
    """Registers an account; 409 while any of its identifiers is held by another account."""
    return await register_account(pool, body)
