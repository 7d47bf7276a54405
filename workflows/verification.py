"""Step 2 of the saga: the one-time code that confirms a deletion.

The workflow owns the run; this holds the verification's own state (the current challenge,
the codes issued, the submitted codes waiting to be checked) and its loop: send a code, check
submissions one at a time in arrival order, resend when asked and allowed, until the right code,
a cancellation or the deadline. Deterministic (no I/O): every side effect is an activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.verification import VerificationActivities
    from contract.errors import (
        ACCOUNT_NOT_ACTIVE,
        ALREADY_ASKED,
        CODE_EXPIRED,
        CODE_LOCKED,
        CODE_NOT_AWAITED,
        NO_CODES_LEFT,
        NO_CONTACT,
        UNKNOWN_CHALLENGE,
    )
    from contract.models import (
        CheckCodeInput,
        CodeCheck,
        DeletionPolicy,
        IssueCodeInput,
        IssuedCode,
        VerificationOutcome,
        VerificationStatus,
    )
    from contract.stages import Stage
    from workflows.failures import error_message
    from workflows.patches import UNDELIVERABLE_CODE_ENDS_VERIFICATION, Patches
    from workflows.policies import SHORT, database_retry_except, wait_until

Reply = asyncio.Future[CodeCheck]


class CodeVerification:
    def __init__(self, account_id: str, policy: DeletionPolicy, patches: Patches) -> None:
        self._account_id = account_id
        self._patches = patches
        self._policy = policy
        self.status: VerificationStatus | None = None
        """What the `status` query shows while a code is awaited."""
        self.verified = False
        self.resend_requested = False
        self._challenge_id: str | None = None
        self._codes_issued = 0
        self.failure: str | None = None
        """Why no code could be sent, when that ended the verification."""
        self._submitted: list[tuple[str, Reply | None]] = []
        """Submitted codes in arrival order; an update waits on its future for the outcome."""

    def refuse_useless_submission(self) -> None:
        """A code for a locked or expired challenge changes nothing: refused (no history)."""
        status = self.status
        if status is None:
            return
        if status.attempts_left == 0:
            raise ApplicationError(
                "this code has no attempts left: ask for a new one", type=CODE_LOCKED
            )
        if workflow.now() >= status.code_expires_at:
            raise ApplicationError("this code has expired: ask for a new one", type=CODE_EXPIRED)

    def refuse_useless_resend(self) -> None:
        if self.status is not None and self.status.codes_left <= 0:
            raise ApplicationError(
                "no more codes can be sent for this deletion; cancel and start again",
                type=NO_CODES_LEFT,
            )
        if self.resend_requested:
            raise ApplicationError("a new code is already asked for", type=ALREADY_ASKED)

    def submit(self, code: str, reply: Reply | None = None) -> None:
        self._submitted.append((code, reply))

    async def until_right_code(
        self, deadline: datetime, cancelled: Callable[[], bool]
    ) -> Stage | None:
        """Sends a code and checks submissions until one is accepted (None), the user cancels
        (`cancelled()` turns true: CANCELLED) or the deadline passes (EXPIRED)."""
        ended = await self._until_right_code(deadline, cancelled)
        # Codes still queued are not needed any more (accepted, cancelled or expired).
        while self._submitted:
            _, reply = self._submitted.pop(0)
            if reply is not None:
                reply.set_exception(not_awaited())
        return ended

    async def _until_right_code(
        self, deadline: datetime, cancelled: Callable[[], bool]
    ) -> Stage | None:
        if not await self._issue_code():
            return Stage.CANCELLED
        while True:
            if cancelled():
                return Stage.CANCELLED
            if workflow.now() >= deadline:
                return Stage.EXPIRED
            if self.resend_requested and self._codes_left() == 0:
                self.resend_requested = False
            if self.resend_requested and self._may_resend():
                self.resend_requested = False
                if not await self._issue_code():
                    return Stage.CANCELLED
            while self._submitted:
                code, reply = self._submitted.pop(0)
                outcome = await self._check_code(code)
                if reply is not None:
                    assert self.status is not None
                    reply.set_result(
                        CodeCheck(outcome=outcome, attempts_left=self.status.attempts_left)
                    )
                if outcome is VerificationOutcome.ACCEPTED:
                    self.verified = True
                    return None
            # A resend asked for too early is sent as soon as the interval has passed.
            wake_at = deadline
            if self.resend_requested and self.status is not None:
                wake_at = min(deadline, self.status.next_resend_at)
            await wait_until(
                lambda: (
                    bool(self._submitted)
                    or cancelled()
                    or (self.resend_requested and self._may_resend())
                ),
                wake_at,
            )

    async def _issue_code(self) -> bool:
        """Sends a new code; False when none could be sent (no contact channel, the account
        not active, or the gateway down for as long as the code would have been valid)."""
        policy = self._policy
        self._challenge_id = str(workflow.uuid4())
        try:
            issued = await self._issue(policy)
        except ActivityError as error:
            if not self._patches.has(UNDELIVERABLE_CODE_ENDS_VERIFICATION):
                raise
            self.failure = f"no verification code could be sent: {error_message(error)}"
            return False
        self._codes_issued += 1
        self.status = VerificationStatus(
            channel=issued.channel,
            destination=issued.destination,
            code_expires_at=issued.expires_at,
            attempts_left=issued.attempts_left,
            codes_left=policy.max_codes - self._codes_issued,
            next_resend_at=workflow.now() + policy.resend_interval,
        )
        return True

    async def _issue(self, policy: DeletionPolicy) -> IssuedCode:
        assert self._challenge_id is not None
        return await workflow.execute_activity_method(
            VerificationActivities.issue_verification_code,
            IssueCodeInput(
                account_id=self._account_id,
                workflow_id=workflow.info().workflow_id,
                challenge_id=self._challenge_id,
                issued_at=workflow.now(),
                expires_at=workflow.now() + policy.code_ttl,
                attempts=policy.code_attempts,
                code_digits=policy.code_digits,
            ),
            start_to_close_timeout=SHORT,
            # The gateway is retried until it accepts, for as long as the code would be valid.
            schedule_to_close_timeout=policy.code_ttl,
            retry_policy=database_retry_except(ACCOUNT_NOT_ACTIVE, NO_CONTACT),
        )

    def _codes_left(self) -> int:
        return self.status.codes_left if self.status else 0

    def _may_resend(self) -> bool:
        status = self.status
        return (
            status is not None and status.codes_left > 0 and workflow.now() >= status.next_resend_at
        )

    async def _check_code(self, code: str) -> VerificationOutcome:
        status = self.status
        assert status is not None and self._challenge_id is not None
        if workflow.now() >= status.code_expires_at:
            outcome = VerificationOutcome.EXPIRED
        elif status.attempts_left == 0:
            outcome = VerificationOutcome.LOCKED
        else:
            check = await workflow.execute_activity_method(
                VerificationActivities.check_verification_code,
                CheckCodeInput(
                    challenge_id=self._challenge_id,
                    attempt_id=str(workflow.uuid4()),
                    code=code,
                    checked_at=workflow.now(),
                ),
                start_to_close_timeout=SHORT,
                retry_policy=database_retry_except(UNKNOWN_CHALLENGE),
            )
            outcome = check.outcome
            status.attempts_left = check.attempts_left
        status.last_outcome = outcome
        return outcome


def not_awaited() -> ApplicationError:
    return ApplicationError("no verification code is awaited", type=CODE_NOT_AWAITED)
