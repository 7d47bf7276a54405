"""At most 10 verification codes per account and per recipient in 24 hours, across deletion runs:
cancelling and starting again does not reset it (real activities, PostgreSQL, Temporal)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from accounts.registration import RegistrationRequest, register_account
from activities.verification import VerificationActivities
from contract.models import IssueCodeInput
from starter.errors import TooSoon
from store.code_limits import CODE_LIMIT
from tests.support import Inbox, Stack, code_hasher_for_tests, new_account

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def issue(
    activities: VerificationActivities, account_id: str, challenge_id: str | None = None
) -> str:
    """One code, as a run of its own would ask for it (each run has its own workflow id)."""
    challenge_id = challenge_id or str(uuid.uuid4())
    await ActivityEnvironment().run(
        activities.issue_verification_code,
        IssueCodeInput(
            account_id=account_id,
            workflow_id=f"run-{uuid.uuid4()}",
            challenge_id=challenge_id,
            issued_at=NOW,
            expires_at=NOW + timedelta(minutes=10),
            attempts=5,
            code_digits=6,
        ),
    )
    return challenge_id


async def test_the_eleventh_code_in_a_day_is_refused_across_runs_with_when_to_retry(
    pool: asyncpg.Pool,
) -> None:
    inbox = Inbox()
    activities = VerificationActivities(pool, inbox, code_hasher_for_tests())
    account_id = await new_account(pool)
    challenges = [await issue(activities, account_id) for _ in range(CODE_LIMIT)]
    # A retry of a code that was allowed is the same code: not counted again.
    await issue(activities, account_id, challenges[-1])

    with pytest.raises(ApplicationError) as refused:
        await issue(activities, account_id)
    assert refused.value.type == "CodeLimitReached" and refused.value.non_retryable
    [details] = refused.value.details
    assert 23 * 3600 < details["retry_after_seconds"] <= 24 * 3600
    assert datetime.fromisoformat(details["next_code_at"]) > datetime.now(UTC)
    assert len(inbox.messages) == CODE_LIMIT + 1  # the retry's message included
    assert await pool.fetchval("select count(*) from verification_code_issues") == CODE_LIMIT
    # Nothing of the refused code was written.
    assert await pool.fetchval("select count(*) from verification_challenges") == CODE_LIMIT

    # Codes leave the window after 24 hours: the oldest one going frees one code.
    await pool.execute(
        "update verification_code_issues set issued_at = now() - interval '25 hours'"
        " where challenge_id = $1",
        uuid.UUID(challenges[0]),
    )
    await issue(activities, account_id)
    with pytest.raises(ApplicationError, match="at most 10 codes"):
        await issue(activities, account_id)


async def test_the_limit_follows_the_recipient_to_another_account(pool: asyncpg.Pool) -> None:
    activities = VerificationActivities(pool, Inbox(), code_hasher_for_tests())
    first = await new_account(pool)
    email = await pool.fetchval("select email from accounts where account_id = $1", first)
    for _ in range(CODE_LIMIT):
        await issue(activities, first)
    # The first account is deleted (its identifiers released); another registers the address.
    await pool.execute(
        "update accounts set status = 'deleted', deleted_at = now(), email = null, phone = null,"
        " user_name = null where account_id = $1",
        first,
    )
    await pool.execute(
        "update identifier_claims set released_at = now(), normalized_value = null"
        " where account_id = $1",
        first,
    )
    second = (
        await register_account(
            pool,
            RegistrationRequest(user_name="second", email=email, phone="+14155550142"),
        )
    ).account_id
    with pytest.raises(ApplicationError) as refused:
        await issue(activities, second)
    assert refused.value.type == "CodeLimitReached"
    # Counted by a keyed hash: the address itself is not stored.
    hashes = await pool.fetch("select recipient_hash from verification_code_issues")
    assert all(email.encode() not in bytes(row["recipient_hash"]) for row in hashes)
    assert all(len(row["recipient_hash"]) == 32 for row in hashes)


async def test_the_client_refuses_to_start_a_deletion_that_could_send_no_code(
    stack: Stack,
) -> None:
    pool, deletions = stack.pool, stack.deletions
    account_id = await new_account(pool)
    assert await deletions.code_limit_retry_after(account_id) is None
    activities = VerificationActivities(pool, Inbox(), code_hasher_for_tests())
    for _ in range(CODE_LIMIT):
        await issue(activities, account_id)

    wait = await deletions.code_limit_retry_after(account_id)
    assert wait is not None and timedelta(hours=23) < wait <= timedelta(hours=24)
    with pytest.raises(TooSoon) as refused:
        await deletions.start(account_id)
    assert refused.value.retry_after is not None
    assert 23 * 3600 < refused.value.retry_after <= 24 * 3600
    with pytest.raises(RPCError):  # no run was started
        await (await deletions.handle(account_id)).describe()
