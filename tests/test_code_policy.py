"""The verification code policy, rule by rule, on the real activities and PostgreSQL.

Timers (expiry, resend interval, deadlines) are in test_timers.py on the time-skipping server;
wrong attempts until the code is dead in test_saga.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.verification import VerificationActivities, new_code
from contract.models import CheckCodeInput, DeletionPolicy, IssueCodeInput, VerificationOutcome
from core.code_hash import CodeHasher, scrypt_hash
from tests.support import Inbox, code_hasher_for_tests, new_account

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(50, 82))


def keys(*entries: tuple[str, bytes]) -> CodeHasher:
    return CodeHasher.from_text(
        ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in entries)
    )


def verification(
    pool: asyncpg.Pool, inbox: Inbox, hasher: CodeHasher | None = None
) -> VerificationActivities:
    return VerificationActivities(pool, inbox, hasher or code_hasher_for_tests())


async def issue(
    activities: VerificationActivities, account_id: str, *, workflow_id: str, digits: int = 6
) -> str:
    challenge_id = str(uuid.uuid4())
    await ActivityEnvironment().run(
        activities.issue_verification_code,
        IssueCodeInput(
            account_id=account_id,
            workflow_id=workflow_id,
            challenge_id=challenge_id,
            issued_at=NOW,
            expires_at=NOW + timedelta(minutes=10),
            attempts=5,
            code_digits=digits,
        ),
    )
    return challenge_id


async def check(
    activities: VerificationActivities, challenge_id: str, code: str
) -> VerificationOutcome:
    result = await ActivityEnvironment().run(
        activities.check_verification_code,
        CheckCodeInput(
            challenge_id=challenge_id,
            attempt_id=str(uuid.uuid4()),
            code=code,
            checked_at=NOW + timedelta(minutes=1),
        ),
    )
    return result.outcome


@pytest.mark.parametrize("digits", [6, 7, 8])
async def test_codes_have_the_configured_number_of_random_digits(
    pool: asyncpg.Pool, digits: int
) -> None:
    inbox = Inbox()
    activities = verification(pool, inbox)
    account_id = await new_account(pool)
    await issue(activities, account_id, workflow_id="wf-digits", digits=digits)
    [body] = [m.body for m in inbox.messages]
    code = body.split(" is ", 1)[1].split(".", 1)[0]
    assert code.isdigit() and len(code) == digits


def test_the_policy_refuses_codes_shorter_than_six_or_longer_than_eight_digits() -> None:
    for digits in (4, 5, 9):
        with pytest.raises(ValidationError):
            DeletionPolicy(code_digits=digits)


def test_codes_come_from_a_csprng_and_do_not_repeat_in_practice() -> None:
    codes = {new_code(6) for _ in range(2000)}
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    # 2,000 draws from a million: a handful of repeats at most, never a pattern.
    assert len(codes) > 1990
    assert {code[0] for code in codes} == set("0123456789")


async def test_a_code_works_once(pool: asyncpg.Pool) -> None:
    inbox = Inbox()
    activities = verification(pool, inbox)
    account_id = await new_account(pool)
    challenge = await issue(activities, account_id, workflow_id="wf-once")
    code = inbox.codes(account_id)[0]
    assert await check(activities, challenge, code) is VerificationOutcome.ACCEPTED
    assert await check(activities, challenge, code) is VerificationOutcome.EXPIRED


async def test_a_code_is_bound_to_the_deletion_it_was_issued_for(pool: asyncpg.Pool) -> None:
    inbox = Inbox()
    activities = verification(pool, inbox)
    mine, theirs = await new_account(pool), await new_account(pool)
    my_challenge = await issue(activities, mine, workflow_id="wf-mine")
    await issue(activities, theirs, workflow_id="wf-theirs")
    while inbox.codes(theirs)[-1] == inbox.codes(mine)[0]:  # one in a million: draw again
        await issue(activities, theirs, workflow_id="wf-theirs")
    their_code = inbox.codes(theirs)[-1]
    assert await check(activities, my_challenge, their_code) is VerificationOutcome.WRONG


async def test_only_an_hmac_under_the_key_outside_the_database_is_stored(
    pool: asyncpg.Pool,
) -> None:
    """Whoever reads the table cannot test candidates without CODE_HASH_KEY (not stored)."""
    inbox = Inbox()
    activities = verification(pool, inbox, keys(("k1", KEY_1)))
    account_id = await new_account(pool)
    first = await issue(activities, account_id, workflow_id="wf-hash-1")
    second = await issue(activities, account_id, workflow_id="wf-hash-2")
    rows = await pool.fetch(
        "select challenge_id, scheme, key_id, salt, code_hash from verification_challenges"
        " order by issued_at"
    )
    assert [str(r["challenge_id"]) for r in rows] == [first, second]
    for row, code in zip(rows, inbox.codes(account_id), strict=True):
        assert (row["scheme"], row["key_id"], row["salt"]) == ("hmac-sha256", "k1", None)
        message = f"{row['challenge_id']}:{code}".encode()
        assert row["code_hash"] == hmac.new(KEY_1, message, hashlib.sha256).digest()
        assert row["code_hash"] != hashlib.sha256(message).digest(), "unkeyed"
    dump = await pool.fetchval(
        "select string_agg(to_jsonb(c)::text, ' ') from verification_challenges c"
    )
    for code in inbox.codes(account_id):
        assert code not in dump
        assert code.encode().hex() not in dump


async def test_a_new_key_hashes_new_codes_and_the_old_key_still_checks_outstanding_ones(
    pool: asyncpg.Pool,
) -> None:
    inbox = Inbox()
    before = verification(pool, inbox, keys(("k1", KEY_1)))
    after = verification(pool, inbox, keys(("k2", KEY_2), ("k1", KEY_1)))
    account_id = await new_account(pool)
    outstanding = await issue(before, account_id, workflow_id="wf-rotate-1")
    assert await check(after, outstanding, inbox.codes(account_id)[0]) is (
        VerificationOutcome.ACCEPTED
    )
    fresh = await issue(after, account_id, workflow_id="wf-rotate-2")
    key_id = await pool.fetchval(
        "select key_id from verification_challenges where challenge_id = $1", uuid.UUID(fresh)
    )
    assert key_id == "k2"
    assert await check(after, fresh, inbox.codes(account_id)[1]) is VerificationOutcome.ACCEPTED


async def test_a_code_under_a_key_no_longer_listed_answers_expired_and_costs_nothing(
    pool: asyncpg.Pool,
) -> None:
    inbox = Inbox()
    account_id = await new_account(pool)
    old_key = verification(pool, inbox, keys(("k1", KEY_1)))
    challenge = await issue(old_key, account_id, workflow_id="wf-old")
    dropped = verification(pool, inbox, keys(("k2", KEY_2)))
    code = inbox.codes(account_id)[0]
    assert await check(dropped, challenge, code) is VerificationOutcome.EXPIRED
    attempts = await pool.fetchval(
        "select attempts_left from verification_challenges where challenge_id = $1",
        uuid.UUID(challenge),
    )
    assert attempts == 5


async def test_scrypt_challenges_issued_before_the_keyed_hash_still_verify(
    pool: asyncpg.Pool,
) -> None:
    """A challenge written as the worker before migration 0007 wrote it: no scheme, no key id."""
    activities = verification(pool, Inbox())
    account_id = await new_account(pool)
    challenge, salt = str(uuid.uuid4()), os.urandom(16)
    await pool.execute(
        """
        insert into verification_challenges (challenge_id, account_id, workflow_id, channel,
            salt, code_hash, expires_at, attempts_left)
        values ($1, $2, 'wf-scrypt', 'email', $3, $4, $5, 5)
        """,
        uuid.UUID(challenge),
        account_id,
        salt,
        scrypt_hash("482139", salt, challenge),
        NOW + timedelta(minutes=10),
    )
    assert (
        await pool.fetchval(
            "select scheme from verification_challenges where challenge_id = $1",
            uuid.UUID(challenge),
        )
        == "scrypt"
    )
    assert await check(activities, challenge, "000000") is VerificationOutcome.WRONG
    assert await check(activities, challenge, "482139") is VerificationOutcome.ACCEPTED
