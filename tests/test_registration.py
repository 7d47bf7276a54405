"""Registration claims user name, email and phone atomically and normalised (real PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from accounts.identifiers import IdentifierKind, mask_email, mask_phone
from accounts.registration import IdentifierTaken, RegistrationRequest, register_account
from tests.support import API_TOKEN

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def request(
    user_name: str = "jane", email: str = "jane@example.com", phone: str = "+14155550123"
) -> RegistrationRequest:
    return RegistrationRequest(user_name=user_name, email=email, phone=phone)


async def test_registration_claims_all_three_identifiers(pool: asyncpg.Pool) -> None:
    account = await register_account(pool, request())
    claims = await pool.fetch(
        "select kind, normalized_value from identifier_claims where account_id = $1 order by kind",
        account.account_id,
    )
    assert [(c["kind"], c["normalized_value"]) for c in claims] == [
        ("email", "jane@example.com"),
        ("phone", "+14155550123"),
        ("user_name", "jane"),
    ]
    assert account.email_masked == "j***@example.com"
    assert account.phone_masked == "+14 *** **** 0123"


@pytest.mark.parametrize(
    ("field", "entered", "normalised"),
    [
        ("user_name", "  Jane.Doe ", "jane.doe"),
        ("email", "Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("phone", "+86 138-0013-8000", "+8613800138000"),
        ("phone", "0086 (138) 0013 8000", "+8613800138000"),
        # The trunk prefix (the 0 dialled inside the country) is not part of the number.
        ("phone", "+44 07911 123456", "+447911123456"),
        ("phone", "+44 (0)7911 123456", "+447911123456"),
        ("phone", "0044 7911 123456", "+447911123456"),
        # Internationalised addresses: accepted, NFC, the domain in its Unicode IDNA form.
        ("email", "josé@example.com", "josé@example.com"),
        ("email", "Jose\u0301@Example.com", "josé@example.com"),
        ("email", "用户@例子.广告", "用户@例子.广告"),
        ("email", "jane@xn--fsqu00a.xn--4rr70v", "jane@例子.广告"),
    ],
)
def test_identifiers_are_normalised(field: str, entered: str, normalised: str) -> None:
    values = {"user_name": "jane", "email": "jane@example.com", "phone": "+14155550123"}
    values[field] = entered
    assert getattr(RegistrationRequest(**values), field) == normalised


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("user_name", "ab"),
        ("user_name", "1jane"),
        ("user_name", "jane doe"),
        ("email", "jane"),
        ("email", "jane@localhost"),
        ("email", "jane..doe@example.com"),
        ("email", "jane@exa_mple.com"),
        ("phone", "4155550100"),
        ("phone", "+0123456789"),
        ("phone", "+1 415 CALL NOW"),
        ("phone", "+44 7911 12345"),  # a digit short
        ("phone", "+1 415 155 0123"),  # no US exchange starts with 1
        ("phone", "+999 1234 5678"),  # no such country code
    ],
)
def test_malformed_identifiers_are_refused_without_echoing_them(field: str, bad: str) -> None:
    values = {"user_name": "jane", "email": "jane@example.com", "phone": "+14155550123"}
    values[field] = bad
    with pytest.raises(ValidationError) as raised:
        RegistrationRequest(**values)
    errors = raised.value.errors(include_input=False)
    assert [e["loc"] for e in errors] == [(field,)]
    assert bad not in str(errors)


@pytest.mark.parametrize(
    ("user_name", "email", "phone", "taken"),
    [
        ("JANE", "other@example.com", "+14155550100", [IdentifierKind.USER_NAME]),
        ("other", "JANE@example.com", "+14155550100", [IdentifierKind.EMAIL]),
        ("other", "other@example.com", "+1 (415) 555-0123", [IdentifierKind.PHONE]),
        ("jane", "jane@example.com", "+14155550123", list(IdentifierKind)),
    ],
)
async def test_a_held_identifier_makes_registration_fail_naming_it(
    pool: asyncpg.Pool, user_name: str, email: str, phone: str, taken: list[IdentifierKind]
) -> None:
    await register_account(pool, request())
    with pytest.raises(IdentifierTaken) as raised:
        await register_account(pool, request(user_name, email, phone))
    assert raised.value.kinds == taken
    # Nothing of the refused registration was written.
    assert await pool.fetchval("select count(*) from accounts") == 1
    assert await pool.fetchval("select count(*) from identifier_claims") == 3


async def test_one_phone_written_with_and_without_its_trunk_prefix_is_claimed_once(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    first = {"user_name": "jane", "email": "jane@example.com", "phone": "+44 07911 123456"}
    assert (await api.post("/v1/accounts", json=first, headers=AUTH)).status_code == 201
    second = {"user_name": "john", "email": "john@example.com", "phone": "+447911123456"}
    again = await api.post("/v1/accounts", json=second, headers=AUTH)
    assert again.status_code == 409
    assert "phone number" in again.text
    assert await pool.fetchval("select count(*) from accounts") == 1
    assert (
        await pool.fetchval("select normalized_value from identifier_claims where kind = 'phone'")
        == "+447911123456"
    )


@pytest.mark.parametrize("phone", ["+44 7911 12345", "+1 415 155 0123", "+999 1234 5678"])
async def test_an_invalid_phone_number_gets_a_clear_422_and_changes_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, phone: str
) -> None:
    body = {"user_name": "jane", "email": "jane@example.com", "phone": phone}
    response = await api.post("/v1/accounts", json=body, headers=AUTH)
    assert response.status_code == 422
    assert "not a valid phone number" in response.text
    assert phone not in response.text
    assert await pool.fetchval("select count(*) from accounts") == 0


async def test_an_internationalised_email_registers_and_is_claimed_in_its_normal_form(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    body = {"user_name": "yonghu", "email": "用户@例子.广告", "phone": "+8613800138000"}
    created = await api.post("/v1/accounts", json=body, headers=AUTH)
    assert created.status_code == 201
    assert created.json()["email_masked"] == "用***@例子.广告"
    # The same address with its domain in ASCII (punycode) is the same email.
    other = {"user_name": "other", "email": "用户@xn--fsqu00a.xn--4rr70v", "phone": "+14155550100"}
    again = await api.post("/v1/accounts", json=other, headers=AUTH)
    assert again.status_code == 409
    assert "email address" in again.text


async def test_released_identifiers_can_be_registered_again(pool: asyncpg.Pool) -> None:
    first = await register_account(pool, request())
    await pool.execute(
        """
        update identifier_claims set released_at = now(), normalized_value = null
        where account_id = $1
        """,
        first.account_id,
    )
    second = await register_account(pool, request())
    assert second.account_id != first.account_id


async def test_concurrent_registrations_of_one_identifier_admit_exactly_one(
    pool: asyncpg.Pool,
) -> None:
    attempts = [
        register_account(pool, request(f"user{i}", f"user{i}@example.com", "+14155550199"))
        for i in range(8)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, IdentifierTaken) and r.kinds == [IdentifierKind.PHONE] for r in losers)


def test_masking_keeps_only_what_the_user_needs_to_recognise() -> None:
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_phone("+8613800138000") == "+86 *** **** 8000"
