"""Verification codes: issued from a CSPRNG, delivered through the outbox, stored only as a
keyed hash (`core.code_hash`), checked in constant time, single use, with limited
attempts."""

from __future__ import annotations

import math
import secrets
import uuid

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import (
    Message,
    Notifier,
    contact_channel,
    deliver_recorded,
    masked,
    record_outgoing,
)
from contract.errors import (
    ACCOUNT_NOT_ACTIVE,
    CODE_LIMIT_REACHED,
    NO_CONTACT,
    UNKNOWN_CHALLENGE,
)
from contract.models import CheckCodeInput, CodeCheck, IssueCodeInput, IssuedCode
from contract.models import VerificationOutcome as Outcome
from core.business_metrics import BusinessMetrics
from core.code_hash import CodeHash, CodeHasher
from store.code_limits import CODE_LIMIT, code_allowance, count_code, lock_recipient
from store.db import Connection


def stored_hash(row: asyncpg.Record) -> CodeHash:
    """A challenge row's hash columns."""
    return CodeHash(row["scheme"], row["key_id"], row["salt"], row["code_hash"])


def new_code(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


class VerificationActivities:
    def __init__(self, pool: asyncpg.Pool, notifier: Notifier, hasher: CodeHasher) -> None:
        self._pool = pool
        self._notifier = notifier
        self._hasher = hasher

    @activity.defn
    async def issue_verification_code(self, request: IssueCodeInput) -> IssuedCode:
        """Issues a fresh code for the challenge and invalidates the run's earlier ones.

        A retry issues a new code for the same challenge: the code lives only in memory
        until it is delivered, so a lost delivery can only be replaced, never repeated.
        """
        code = new_code(request.code_digits)
        code_hash = self._hasher.hash(code, request.challenge_id)
        challenge = uuid.UUID(request.challenge_id)
        async with self._pool.acquire() as conn, conn.transaction():
            account = await conn.fetchrow(
                "select status, email, phone from accounts where account_id = $1 for share",
                request.account_id,
            )
            if account is None or account["status"] != "active":
                raise ApplicationError(
                    "the account is not active", type=ACCOUNT_NOT_ACTIVE, non_retryable=True
                )
            channel, recipient = contact_channel(account["email"], account["phone"])
            if not recipient:
                raise ApplicationError(
                    "the account has neither email nor phone", type=NO_CONTACT, non_retryable=True
                )
            await self._within_code_limit(conn, request.account_id, challenge)
            await conn.execute(
                """
                insert into verification_challenges (challenge_id, account_id, workflow_id,
                    channel, scheme, key_id, salt, code_hash, expires_at, attempts_left)
                values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                on conflict (challenge_id) do update
                    set scheme = excluded.scheme, key_id = excluded.key_id,
                        salt = excluded.salt, code_hash = excluded.code_hash,
                        expires_at = excluded.expires_at, issued_at = now()
                """,
                challenge,
                request.account_id,
                request.workflow_id,
                channel,
                code_hash.scheme,
                code_hash.key_id,
                code_hash.salt,
                code_hash.digest,
                request.expires_at,
                request.attempts,
            )
            await conn.execute(
                """
                update verification_challenges set invalidated_at = now()
                where workflow_id = $1 and challenge_id <> $2
                  and consumed_at is null and invalidated_at is null
                """,
                request.workflow_id,
                challenge,
            )
            notification_id = await record_outgoing(
                conn,
                idempotency_key=f"verification-{request.challenge_id}",
                account_id=request.account_id,
                channel=channel,
                recipient=recipient,
                template="deletion_verification_code",
                body=None,
            )
        minutes = max(1, round((request.expires_at - request.issued_at).total_seconds() / 60))
        body = (
            f"Your code to confirm the deletion of your cloud account is {code}. "
            f"It is valid for {minutes} minutes. If you did not ask to delete your account, "
            "ignore this message and change your password."
        )
        await deliver_recorded(
            self._pool,
            self._notifier,
            Message(notification_id, request.account_id, channel, recipient, body),
        )
        activity.logger.info("verification code issued by %s", channel)
        BusinessMetrics(activity.metric_meter()).code_sent(channel)
        return IssuedCode(
            challenge_id=request.challenge_id,
            channel=channel,
            destination=masked(channel, recipient),
            expires_at=request.expires_at,
            attempts_left=request.attempts,
        )

    @staticmethod
    async def _within_code_limit(conn: Connection, account_id: str, challenge: uuid.UUID) -> None:
        """Counts the code against the limits across runs (per account and per recipient, in
        24 hours), or refuses it for good with when the next one is allowed."""
        await lock_recipient(conn, account_id)
        allowance = await code_allowance(conn, account_id, challenge)
        if (wait := allowance.retry_after) is not None:
            assert allowance.next_code_at is not None
            raise ApplicationError(
                f"at most {CODE_LIMIT} codes per account and recipient in 24 hours",
                {
                    "retry_after_seconds": math.ceil(wait.total_seconds()),
                    "next_code_at": allowance.next_code_at.isoformat(),
                },
                type=CODE_LIMIT_REACHED,
                non_retryable=True,
            )
        assert allowance.recipient_hash is not None
        await count_code(conn, account_id, challenge, allowance.recipient_hash)

    @activity.defn
    async def check_verification_code(self, request: CheckCodeInput) -> CodeCheck:
        """Checks one submitted code once; a retry of the same attempt returns the same outcome."""
        attempt = uuid.UUID(request.attempt_id)
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await conn.fetchrow(
                "select outcome, attempts_left from verification_attempts where attempt_id = $1",
                attempt,
            )
            if recorded:
                return CodeCheck(
                    outcome=Outcome(recorded["outcome"]), attempts_left=recorded["attempts_left"]
                )
            row = await conn.fetchrow(
                """
                select account_id, workflow_id, scheme, key_id, salt, code_hash, expires_at,
                       attempts_left, consumed_at, invalidated_at
                from verification_challenges where challenge_id = $1 for update
                """,
                uuid.UUID(request.challenge_id),
            )
            if row is None:
                raise ApplicationError(
                    "no such verification challenge", type=UNKNOWN_CHALLENGE, non_retryable=True
                )
            attempts_left: int = row["attempts_left"]
            # Hash first, whatever the state: every answer takes the same time.
            stored = stored_hash(row)
            matches = await self._hasher.matches(request.code, request.challenge_id, stored)
            replaced = await self._matches_a_replaced_code(conn, row["workflow_id"], request)
            checkable = self._hasher.can_check(stored)
            if not checkable:
                # Hashed under a key CODE_HASH_KEY no longer lists: it can never be accepted;
                # like a replaced code it answers "expired" (ask for a new one), costing nothing.
                activity.logger.warning(
                    "verification code hashed under key id %r, which CODE_HASH_KEY does not list",
                    stored.key_id,
                )
            if (
                not checkable
                or row["consumed_at"]
                or row["invalidated_at"]
                or request.checked_at >= row["expires_at"]
                or (replaced and not matches)
            ):
                # A code from before a resend is expired, not wrong: it costs no attempt.
                outcome = Outcome.EXPIRED
            elif attempts_left == 0:
                outcome = Outcome.LOCKED
            elif matches:
                outcome = Outcome.ACCEPTED
                await conn.execute(
                    "update verification_challenges set consumed_at = now()"
                    " where challenge_id = $1",
                    uuid.UUID(request.challenge_id),
                )
            else:
                attempts_left -= 1
                outcome = Outcome.WRONG if attempts_left else Outcome.LOCKED
                await conn.execute(
                    "update verification_challenges set attempts_left = $2 where challenge_id = $1",
                    uuid.UUID(request.challenge_id),
                    attempts_left,
                )
            await conn.execute(
                """
                insert into verification_attempts
                    (attempt_id, account_id, challenge_id, outcome, attempts_left)
                values ($1, $2, $3, $4, $5)
                """,
                attempt,
                row["account_id"],
                uuid.UUID(request.challenge_id),
                outcome.value,
                attempts_left,
            )
        activity.logger.info("verification attempt: %s", outcome.value)
        BusinessMetrics(activity.metric_meter()).code_checked(outcome.value)
        return CodeCheck(outcome=outcome, attempts_left=attempts_left)

    async def _matches_a_replaced_code(
        self, conn: Connection, workflow_id: str, request: CheckCodeInput
    ) -> bool:
        """Whether the code is one this deletion issued before a resend replaced it.

        Every replaced challenge is hashed, whether or not one matches.
        """
        matched = False
        for old in await conn.fetch(
            """
            select challenge_id, scheme, key_id, salt, code_hash from verification_challenges
            where workflow_id = $1 and challenge_id <> $2 and invalidated_at is not null
            """,
            workflow_id,
            uuid.UUID(request.challenge_id),
        ):
            matched |= await self._hasher.matches(
                request.code, str(old["challenge_id"]), stored_hash(old)
            )
        return matched
