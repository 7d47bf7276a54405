"""Registering an account: it claims its user name, email and phone atomically.

A claim is held until the account holding it is fully deleted, so an identifier can be
registered again only after the deletion released it.
"""

from __future__ import annotations

import re
import secrets

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from accounts.identifiers import (
    IdentifierKind,
    mask_email,
    mask_phone,
    normalize_email,
    normalize_phone,
    normalize_user_name,
)
from contract.names import PLAIN_TEXT_PATTERN


class RegistrationRequest(BaseModel):
    """What the console sends to open an account; values are normalised on validation."""

    model_config = ConfigDict(extra="forbid", str_max_length=320)

    user_name: str = Field(max_length=64, examples=["jane"])
    email: str = Field(max_length=320, examples=["jane@example.com"])
    phone: str = Field(max_length=32, examples=["+14155550123"])
    display_name: str | None = Field(
        default=None, max_length=200, pattern=PLAIN_TEXT_PATTERN, examples=["Jane Doe"]
    )

    @field_validator("user_name", "email", "phone", mode="before")
    @classmethod
    def _plain_text(cls, value: object) -> object:
        """Control characters (NUL above all: PostgreSQL refuses it) are an input error."""
        if isinstance(value, str) and re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("user_name")
    @classmethod
    def _normalize_user_name(cls, value: str) -> str:
        return normalize_user_name(value)

    @field_validator("email")
    @classmethod
    def _normalize_email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("phone")
    @classmethod
    def _normalize_phone(cls, value: str) -> str:
        return normalize_phone(value)


class RegisteredAccount(BaseModel):
    """The new account as shown back: identifiers other than the user name are masked."""

    account_id: str
    user_name: str
    email_masked: str
    phone_masked: str


class IdentifierTaken(Exception):
    """One or more identifiers are held by an account that is not fully deleted."""

    def __init__(self, kinds: list[IdentifierKind]) -> None:
        self.kinds = kinds
        names = " and ".join(kind.label for kind in kinds)
        verb = "is" if len(kinds) == 1 else "are"
        super().__init__(f"the {names} {verb} already held by another account")


def new_account_id() -> str:
    return f"acct-{secrets.token_hex(8)}"


_HELD_CLAIMS = """
    select kind from identifier_claims
    where released_at is null
      and ((kind = 'user_name' and normalized_value = $1)
        or (kind = 'email' and normalized_value = $2)
        or (kind = 'phone' and normalized_value = $3))
    order by array_position(array['user_name', 'email', 'phone'], kind)
"""


async def register_account(
    pool: asyncpg.Pool, request: RegistrationRequest, *, account_id: str | None = None
) -> RegisteredAccount:
    """Creates the account and its three claims in one transaction, or raises IdentifierTaken."""
    account_id = account_id or new_account_id()
    values = (request.user_name, request.email, request.phone)
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                held = await conn.fetch(_HELD_CLAIMS, *values)
                if held:
                    raise IdentifierTaken([IdentifierKind(row["kind"]) for row in held])
                await conn.execute(
                    """
                    insert into accounts (account_id, user_name, email, phone, display_name)
                    values ($1, $2, $3, $4, $5)
                    """,
                    account_id,
                    *values,
                    request.display_name,
                )
                await conn.executemany(
                    """
                    insert into identifier_claims (account_id, kind, normalized_value)
                    values ($1, $2, $3)
                    """,
                    [
                        (account_id, kind.value, value)
                        for kind, value in zip(IdentifierKind, values, strict=True)
                    ],
                )
        except asyncpg.UniqueViolationError:
            # A concurrent registration claimed an identifier between our check and insert.
            held = await conn.fetch(_HELD_CLAIMS, *values)
            if not held:
                raise
            raise IdentifierTaken([IdentifierKind(row["kind"]) for row in held]) from None
    return RegisteredAccount(
        account_id=account_id,
        user_name=request.user_name,
        email_masked=mask_email(request.email),
        phone_masked=mask_phone(request.phone),
    )
