"""AccountDeletion: one run per deletion, from the request to the released identifiers.

Reads like the flow in SPEC.md: check prerequisites (wait while tasks are pending), verify the
user with a one-time code, freeze (compensated by unfreeze) and check again, purge every
product in parallel (the point of no return; blocked purges wait for a retry), release the
identifiers, finalize. Every side effect is an activity; the stage is kept current in the
`status` query, the search attributes and the deletion's row in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.account import AccountActivities
    from activities.notify import NotificationActivities
    from activities.prerequisites import PrerequisiteActivities
    from activities.purge import PurgeActivities
    from activities.verification import VerificationActivities
    from contract.errors import (
        ACCOUNT_NOT_ACTIVE,
        CODE_NOT_AWAITED,
        NO_CONTACT,
        PURGE_REFUSED,
        PURGES_UNFINISHED,
        UNKNOWN_CHALLENGE,
        UNKNOWN_NOTIFICATION,
        UNKNOWN_PRODUCT,
    )
    from contract.models import (
        AccountRef,
        CancelInput,
        CheckCodeInput,
        CodeCheck,
        DeletionPolicy,
        DeletionReceipt,
        DeletionRequest,
        DeletionStatus,
        DeliverNotificationInput,
        FinalizeInput,
        IssueCodeInput,
        PendingTask,
        ProductProgress,
        ProductReceipt,
        ProgressRecord,
        PurgeProductInput,
        PurgeState,
        RecheckInput,
        ResendCodeInput,
        RetryPurgesInput,
        SubmitCodeInput,
        TaskCategory,
        VerificationOutcome,
        VerificationStatus,
    )
    from contract.names import ACCOUNT_ID, DELETION_STAGE
    from contract.stages import Stage

# Short database work: retried until the database answers again (it may be restarting).
DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
SHORT = timedelta(seconds=30)


def _except(*permanent: str) -> RetryPolicy:
    """DATABASE_RETRY, but the activity's permanent error types fail at once."""
    return dataclasses.replace(DATABASE_RETRY, non_retryable_error_types=list(permanent))


class GoBack(Exception):
    """The second prerequisite check found new tasks: the run returns to AWAITING_TASKS."""


@workflow.defn(name="AccountDeletion")
class AccountDeletion:
    @workflow.init
    def __init__(self, request: DeletionRequest) -> None:
        self._request = request
        self._stage = Stage.CHECKING_PREREQUISITES
        self._requested_at: datetime | None = None
        self._deadline: datetime | None = None
        self._pending_tasks: list[PendingTask] = []
        self._products: dict[str, ProductProgress] = {}
        self._receipts: dict[str, ProductReceipt] = {}
        self._verification: VerificationStatus | None = None
        self._challenge_id: str | None = None
        self._codes_issued = 0
        self._verified = False
        self._identifiers_released = False
        self._compensations: list[Callable[[], Awaitable[None]]] = []
        # What the signals asked for; the run acts on it at its next step.
        self._codes: list[tuple[str, asyncio.Future[CodeCheck] | None]] = []
        """Submitted codes in arrival order; an update waits on its future for the outcome."""
        self._resend_requested = False
        self._recheck_requested = False
        self._retry_requested = False
        self._cancel_reason: str | None = None
        self._cancel_requested = False

    # --- the flow ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: DeletionRequest) -> DeletionReceipt:
        self._requested_at = workflow.now()
        workflow.upsert_search_attributes([ACCOUNT_ID.value_set(request.account_id)])
        tasks_deadline = workflow.now() + self._policy.tasks_deadline
        try:
            while True:
                if ended := await self._wait_for_no_pending_tasks(tasks_deadline):
                    return await self._close(ended)
                if not self._verified:
                    if ended := await self._verify():
                        return await self._close(ended)
                try:
                    if ended := await self._freeze_and_check_again():
                        return await self._close(ended)
                    break
                except GoBack:
                    # New tasks late in the run: the user gets the full time again.
                    tasks_deadline = workflow.now() + self._policy.tasks_deadline
                    continue
        except asyncio.CancelledError:
            # Cancelled through Temporal (an operator) before the point of no return.
            await self._compensate()
            self._cancel_reason = "cancelled by an operator"
            return await self._close(Stage.CANCELLED)
        # The point of no return: from here on the deletion only goes forward, whatever is
        # asked. A cancellation through Temporal is refused: the shielded task goes on.
        forward = asyncio.ensure_future(self._purge_and_finalize())
        while True:
            try:
                return await asyncio.shield(forward)
            except asyncio.CancelledError:
                if forward.cancelling() or forward.cancelled():
                    # Not a request to stop the deletion (that cancels only this outer task):
                    # the worker is evicting the run from its cache and cancels every task.
                    raise
                workflow.logger.warning("cancellation refused: purging has begun")

    async def _purge_and_finalize(self) -> DeletionReceipt:
        await self._purge_every_product()
        return await self._finalize()

    async def _wait_for_no_pending_tasks(self, deadline: datetime) -> Stage | None:
        """Checks prerequisites until none is pending; returns a final stage if the run ends."""
        while True:
            await self._set_stage(Stage.CHECKING_PREREQUISITES)
            report = await workflow.execute_activity_method(
                PrerequisiteActivities.check_prerequisites,
                self._ref,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=DATABASE_RETRY,
            )
            self._pending_tasks = report.pending_tasks
            if not self._pending_tasks:
                return None
            if workflow.now() >= deadline:
                # Only after a last check at the deadline itself.
                self._cancel_reason = "pending tasks were not resolved in time"
                return Stage.EXPIRED
            self._recheck_requested = False
            self._deadline = deadline  # recorded with the stage (no command: replays as before)
            await self._set_stage(Stage.AWAITING_TASKS)
            next_check = min(workflow.now() + self._policy.recheck_interval, deadline)
            await self._wait_until(
                lambda: self._recheck_requested or self._cancel_requested, next_check, deadline
            )
            if self._cancel_requested:
                return Stage.CANCELLED

    async def _verify(self) -> Stage | None:
        """Sends a code and waits for the right one; returns a final stage if the run ends."""
        ended = await self._await_right_code()
        # Codes still queued are not needed any more (accepted, cancelled or expired).
        while self._codes:
            _, reply = self._codes.pop(0)
            if reply is not None:
                reply.set_exception(_not_awaited())
        return ended

    async def _await_right_code(self) -> Stage | None:
        deadline = workflow.now() + self._policy.verification_deadline
        self._deadline = deadline
        await self._set_stage(Stage.AWAITING_VERIFICATION)
        await self._issue_code()
        while True:
            if self._cancel_requested:
                return Stage.CANCELLED
            if workflow.now() >= deadline:
                self._cancel_reason = "the deletion was never confirmed with a code"
                return Stage.EXPIRED
            if self._resend_requested and self._codes_left() == 0:
                self._resend_requested = False
            if self._resend_requested and self._may_resend():
                self._resend_requested = False
                await self._issue_code()
            while self._codes:
                code, reply = self._codes.pop(0)
                outcome = await self._check_code(code)
                if reply is not None:
                    assert self._verification is not None
                    attempts_left = self._verification.attempts_left
                    reply.set_result(CodeCheck(outcome=outcome, attempts_left=attempts_left))
                if outcome is VerificationOutcome.ACCEPTED:
                    self._verified = True
                    self._deadline = None
                    return None
            # A resend asked for too early is sent as soon as the interval has passed.
            wake_at = deadline
            if self._resend_requested and self._verification is not None:
                wake_at = min(deadline, self._verification.next_resend_at)
            await self._wait_until(
                lambda: (
                    bool(self._codes)
                    or self._cancel_requested
                    or (self._resend_requested and self._may_resend())
                ),
                wake_at,
                deadline,
            )

    async def _freeze_and_check_again(self) -> Stage | None:
        """The first saga step. Raises GoBack when something new is attached to the account."""
        await self._set_stage(Stage.FREEZING)
        self._compensations.append(self._unfreeze)
        try:
            await workflow.execute_activity_method(
                AccountActivities.freeze_account,
                self._ref,
                start_to_close_timeout=SHORT,
                retry_policy=DATABASE_RETRY,
            )
            report = await workflow.execute_activity_method(
                PrerequisiteActivities.check_prerequisites,
                self._ref,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=DATABASE_RETRY,
            )
        except ActivityError:
            await self._compensate()
            raise
        if report.pending_tasks:
            self._pending_tasks = report.pending_tasks
            await self._compensate()
            raise GoBack()
        if self._cancel_requested:
            await self._compensate()
            return Stage.CANCELLED
        self._compensations.clear()
        return None

    async def _purge_every_product(self) -> None:
        """Purges all products in parallel; failed ones wait for `retry_failed_purges`."""
        for product in await self._plan_purge():
            self._products.setdefault(product, ProductProgress(product=product))
        while True:
            await self._set_stage(Stage.PURGING)
            self._pending_tasks = []
            todo = [p for p in self._products.values() if p.state is not PurgeState.SUCCEEDED]
            await asyncio.gather(*(self._purge(progress) for progress in todo))
            failed = [p for p in self._products.values() if p.state is PurgeState.FAILED]
            if not failed:
                return
            self._pending_tasks = [
                PendingTask(
                    category=TaskCategory.PURGE_FAILURE,
                    product=progress.product,
                    item=f"purge of {progress.product}",
                    message=progress.failure or "the purge failed",
                    resolution=(
                        "The product team resolves the cause (for example lifts the hold); "
                        "then an operator retries the failed purges."
                    ),
                )
                for progress in failed
            ]
            self._retry_requested = False
            await self._set_stage(Stage.PURGE_BLOCKED)
            await workflow.wait_condition(lambda: self._retry_requested)

    async def _finalize(self) -> DeletionReceipt:
        """Releases the identifiers (only now: every purge finished), then closes the deletion."""
        await self._set_stage(Stage.RELEASING_IDENTIFIERS)
        while True:
            try:
                await workflow.execute_activity_method(
                    AccountActivities.release_identifiers,
                    self._ref,
                    start_to_close_timeout=SHORT,
                    retry_policy=DATABASE_RETRY,
                )
                break
            except ActivityError as error:
                if _error_type(error) != PURGES_UNFINISHED:
                    raise
                # A product was added to the registry during this run: purge it too.
                await self._purge_every_product()
                await self._set_stage(Stage.RELEASING_IDENTIFIERS)
        self._identifiers_released = True
        assert self._requested_at is not None
        receipt = await workflow.execute_activity_method(
            AccountActivities.finalize_deletion,
            FinalizeInput(
                account_id=self._account_id,
                workflow_id=workflow.info().workflow_id,
                requested_by=self._req.requested_by,
                requested_at=self._requested_at,
                products=[self._receipts[name] for name in sorted(self._receipts)],
            ),
            start_to_close_timeout=SHORT,
            retry_policy=DATABASE_RETRY,
        )
        self._stage = Stage.DELETED
        workflow.upsert_search_attributes([DELETION_STAGE.value_set(Stage.DELETED.value)])
        await self._send_confirmation()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return receipt

    # --- steps ---------------------------------------------------------------------------------

    async def _issue_code(self) -> None:
        policy = self._policy
        self._challenge_id = str(workflow.uuid4())
        issued = await workflow.execute_activity_method(
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
            retry_policy=_except(ACCOUNT_NOT_ACTIVE, NO_CONTACT),
        )
        self._codes_issued += 1
        self._verification = VerificationStatus(
            channel=issued.channel,
            destination=issued.destination,
            code_expires_at=issued.expires_at,
            attempts_left=issued.attempts_left,
            codes_left=policy.max_codes - self._codes_issued,
            next_resend_at=workflow.now() + policy.resend_interval,
        )

    def _codes_left(self) -> int:
        return self._verification.codes_left if self._verification else 0

    def _may_resend(self) -> bool:
        verification = self._verification
        return (
            verification is not None
            and verification.codes_left > 0
            and workflow.now() >= verification.next_resend_at
        )

    async def _check_code(self, code: str) -> VerificationOutcome:
        verification = self._verification
        assert verification is not None and self._challenge_id is not None
        if workflow.now() >= verification.code_expires_at:
            outcome = VerificationOutcome.EXPIRED
        elif verification.attempts_left == 0:
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
                retry_policy=_except(UNKNOWN_CHALLENGE),
            )
            outcome = check.outcome
            verification.attempts_left = check.attempts_left
        verification.last_outcome = outcome
        return outcome

    async def _unfreeze(self) -> None:
        await workflow.execute_activity_method(
            AccountActivities.unfreeze_account,
            self._ref,
            start_to_close_timeout=SHORT,
            retry_policy=DATABASE_RETRY,
        )

    async def _compensate(self) -> None:
        """Undoes the saga steps taken so far, the last one first."""
        while self._compensations:
            await self._compensations.pop()()

    async def _plan_purge(self) -> list[str]:
        """The products to purge, recorded in history so that replays see the same list."""
        return await workflow.execute_local_activity_method(
            PurgeActivities.list_products,
            start_to_close_timeout=SHORT,
            retry_policy=DATABASE_RETRY,
        )

    async def _purge(self, progress: ProductProgress) -> None:
        progress.state = PurgeState.RUNNING
        progress.failure = None
        progress.attempts += 1
        try:
            receipt = await workflow.execute_activity_method(
                PurgeActivities.purge_product,
                PurgeProductInput(
                    account_id=self._account_id,
                    workflow_id=workflow.info().workflow_id,
                    product=progress.product,
                ),
                start_to_close_timeout=timedelta(hours=6),
                heartbeat_timeout=self._policy.purge_heartbeat_timeout,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=self._policy.purge_attempts,
                    non_retryable_error_types=[PURGE_REFUSED, UNKNOWN_PRODUCT],
                ),
                summary=f"purge {progress.product}",
            )
        except ActivityError as error:
            progress.state = PurgeState.FAILED
            progress.failure = _error_message(error)
            return
        self._receipts[progress.product] = receipt
        progress.state = PurgeState.SUCCEEDED
        progress.rows = receipt.rows

    async def _send_confirmation(self) -> None:
        try:
            await workflow.execute_activity_method(
                NotificationActivities.deliver_notification,
                DeliverNotificationInput(idempotency_key=f"deleted-{workflow.info().workflow_id}"),
                start_to_close_timeout=SHORT,
                schedule_to_close_timeout=timedelta(days=1),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=5),
                    maximum_interval=timedelta(minutes=10),
                    non_retryable_error_types=[UNKNOWN_NOTIFICATION],
                ),
            )
        except ActivityError as error:
            # The account is deleted either way; the message stays in the outbox.
            workflow.logger.warning("confirmation not delivered: %s", _error_message(error))

    async def _close(self, stage: Stage) -> DeletionReceipt:
        """Ends a run that deleted nothing (cancelled or expired)."""
        assert self._requested_at is not None
        self._deadline = None
        receipt = DeletionReceipt(
            account_id=self._account_id,
            workflow_id=workflow.info().workflow_id,
            outcome=stage,
            requested_by=self._req.requested_by,
            requested_at=self._requested_at,
            closed_at=workflow.now(),
            reason=self._cancel_reason,
        )
        await self._set_stage(stage, receipt=receipt)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return receipt

    async def _set_stage(self, stage: Stage, receipt: DeletionReceipt | None = None) -> None:
        """Moves the stage and shows it in the search attributes and the deletion's row."""
        self._stage = stage
        workflow.upsert_search_attributes([DELETION_STAGE.value_set(stage.value)])
        workflow.set_current_details(self._details())
        await workflow.execute_local_activity_method(
            AccountActivities.record_progress,
            ProgressRecord(
                account_id=self._account_id,
                workflow_id=workflow.info().workflow_id,
                run_id=workflow.info().run_id,
                requested_by=self._req.requested_by,
                stage=stage,
                pending_tasks=self._pending_tasks,
                products=list(self._products.values()),
                closed=stage.is_final,
                receipt=receipt,
                deadline=self._deadline,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=DATABASE_RETRY,
        )

    def _details(self) -> str:
        """What the Temporal UI shows as the run's current details (no PII)."""
        lines = [f"**{self._stage.value}**"]
        lines += [f"- {task.category.value}: {task.item}" for task in self._pending_tasks]
        lines += [
            f"- {p.product}: {p.state.value}" + (f" ({p.failure})" if p.failure else "")
            for p in self._products.values()
        ]
        return "\n".join(lines)

    async def _wait_until(
        self, condition: Callable[[], bool], until: datetime, deadline: datetime
    ) -> None:
        """Waits for the condition, at most until `until`; `deadline` is shown in the status."""
        self._deadline = deadline
        timeout = (until - workflow.now()).total_seconds()
        if timeout <= 0:
            return
        try:
            await workflow.wait_condition(condition, timeout=timeout)
        except TimeoutError:
            pass

    # --- messages ------------------------------------------------------------------------------

    @workflow.signal
    def submit_verification_code(self, request: SubmitCodeInput) -> None:
        """For callers that need no answer; the outcome shows in the `status` query."""
        if self._awaiting_code():
            self._codes.append((request.code, None))

    @workflow.update
    async def verify_code(self, request: SubmitCodeInput) -> CodeCheck:
        """Answers at once with the outcome, for the verification page. Attempts are checked
        one at a time in arrival order, together with signalled ones: no race between them."""
        reply: asyncio.Future[CodeCheck] = asyncio.get_running_loop().create_future()
        self._codes.append((request.code, reply))
        return await reply

    @verify_code.validator
    def _verify_code_only_while_awaited(self, request: SubmitCodeInput) -> None:
        """Rejected before it reaches history: nothing is recorded for a code not awaited."""
        if not self._awaiting_code():
            raise _not_awaited()

    def _awaiting_code(self) -> bool:
        return self._stage is Stage.AWAITING_VERIFICATION and not self._verified

    @workflow.signal
    def resend_verification_code(self, request: ResendCodeInput | None = None) -> None:
        if self._stage is Stage.AWAITING_VERIFICATION:
            self._resend_requested = True

    @workflow.signal
    def recheck_prerequisites(self, request: RecheckInput | None = None) -> None:
        self._recheck_requested = True

    @workflow.signal
    def retry_failed_purges(self, request: RetryPurgesInput | None = None) -> None:
        self._retry_requested = True

    @workflow.signal
    def cancel(self, request: CancelInput | None = None) -> None:
        """Honoured only before the point of no return; ignored afterwards."""
        if self._stage.is_cancellable and not self._cancel_requested:
            self._cancel_requested = True
            self._cancel_reason = (request.reason if request else None) or "cancelled by the user"

    @workflow.query
    def status(self) -> DeletionStatus:
        return DeletionStatus(
            account_id=self._account_id,
            workflow_id=workflow.info().workflow_id,
            stage=self._stage,
            requested_by=self._req.requested_by,
            pending_tasks=self._pending_tasks,
            products=list(self._products.values()),
            verification=self._verification if not self._verified else None,
            verified=self._verified,
            identifiers_released=self._identifiers_released,
            deadline=self._deadline,
            closed_reason=self._cancel_reason if self._stage.is_final else None,
        )

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _req(self) -> DeletionRequest:
        return self._request

    @property
    def _policy(self) -> DeletionPolicy:
        return self._req.policy

    @property
    def _account_id(self) -> str:
        return self._req.account_id

    @property
    def _ref(self) -> AccountRef:
        return AccountRef(account_id=self._account_id, workflow_id=workflow.info().workflow_id)


def _not_awaited() -> ApplicationError:
    return ApplicationError("no verification code is awaited", type=CODE_NOT_AWAITED)


def _error_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _error_message(error: ActivityError) -> str:
    """The innermost failure's message: the product's own words (or the timeout)."""
    cause: BaseException = error
    while isinstance(cause, FailureError) and isinstance(cause.cause, FailureError):
        cause = cause.cause
    return cause.message if isinstance(cause, FailureError) else str(error)
