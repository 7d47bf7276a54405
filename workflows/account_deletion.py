"""AccountDeletion: one run per deletion, from the request to the released identifiers.

Reads like the flow in SPEC.md: one step per stage (`_steps`), each returning the stage that
comes next, moved through the stage machine of `contract.stages`. Steps 1 to 3 (check
prerequisites, verify, freeze and check again) may still be cancelled; purging is the point of
no return, after which the run only goes forward (purge every product, release the
identifiers, finalize). Every side effect is an activity; the stage is kept current in the
`status` query, the search attributes and the deletion's row in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contract.errors import PURGES_UNFINISHED
    from contract.models import (
        AccountRef,
        CancelInput,
        CancelOutcome,
        CodeCheck,
        ConfirmPurgeInput,
        DeletionPolicy,
        DeletionReceipt,
        DeletionRequest,
        DeletionStatus,
        FinalizeInput,
        RecheckInput,
        ResendCodeInput,
        RetryPurgesInput,
        SubmitCodeInput,
    )
    from contract.names import ACCOUNT_ID
    from contract.stages import Stage
    from workflows import account_calls as account
    from workflows import asks
    from workflows.failures import error_type
    from workflows.policies import wait_until
    from workflows.purge import ProductPurges
    from workflows.run_control import continue_as_new, history_is_long, irrevocably
    from workflows.stage_machine import StageMachine
    from workflows.verification import CodeVerification, not_awaited

Step = Callable[[], Awaitable[Stage]]

# Changes of the command sequence, each behind `workflow.patched` (tests/test_replay.py).
CANCEL_CHECKED_BEFORE_CODE = "cancel-checked-before-code"
FREEZE_FINISHES_BEFORE_UNFREEZE = "freeze-finishes-before-unfreeze"
REPLANS_BACK_OFF = "replans-back-off"


@workflow.defn(name="AccountDeletion")
class AccountDeletion:
    @workflow.init
    def __init__(self, request: DeletionRequest) -> None:
        self._request = request
        carried = request.carried
        self._requested_at: datetime | None = carried.requested_at if carried else None
        self._tasks_deadline: datetime | None = carried.tasks_deadline if carried else None
        self._purges = ProductPurges(request.account_id, request.policy, carried)
        self._at = StageMachine(request, self._purges)
        self._receipt: DeletionReceipt | None = None
        self._codes = CodeVerification(request.account_id, request.policy)
        self._codes.verified = carried.verified if carried else False
        self._identifiers_released = False
        self._irrevocable = not self._at.stage.is_cancellable
        """Set in the same step that decides to purge: no cancellation is accepted after it."""
        self._replans = 0
        """Releases refused (PURGES_UNFINISHED) since the last successful plan or retry."""
        self._compensations: list[Callable[[], Awaitable[None]]] = []
        # What the user and operators asked for; the run acts on it at its next step.
        self._recheck_requested = False
        self._last_check_at: datetime | None = None
        self._retry_requested = False
        self._cancel_reason: str | None = None
        self._cancel_requested = False

    # --- the flow ------------------------------------------------------------------------------

    def _steps(self) -> dict[Stage, Step]:
        """SPEC's flow: the step each stage runs; it returns the stage that comes next."""
        return {
            Stage.CHECKING_PREREQUISITES: self._check_prerequisites,  # 1 (AWAITING_TASKS)
            Stage.AWAITING_VERIFICATION: self._verify,  # 2
            Stage.FREEZING: self._freeze_and_check_again,  # 3
            Stage.PURGING: self._purge_every_product,  # 4 (PURGE_BLOCKED)
            Stage.RELEASING_IDENTIFIERS: self._release_identifiers_and_finalize,  # 5
        }

    @workflow.run
    async def run(self, request: DeletionRequest) -> DeletionReceipt:
        self._requested_at = self._requested_at or workflow.now()
        workflow.upsert_search_attributes([ACCOUNT_ID.value_set(request.account_id)])
        self._tasks_deadline = self._tasks_deadline or (
            workflow.now() + self._policy.tasks_deadline
        )
        stage = self._at.stage
        if stage.is_cancellable:
            stage = await self._until_point_of_no_return(stage)
            if stage.is_final:
                return await self._close(stage)
        return await irrevocably(self._beyond_point_of_no_return(stage))

    async def _until_point_of_no_return(self, stage: Stage) -> Stage:
        """Steps 1 to 3, which may still be cancelled. Returns PURGING once the account is
        frozen and clear, or the stage the run ends in (CANCELLED, EXPIRED)."""
        try:
            while stage.is_cancellable:
                stage = await self._steps()[stage]()
        except asyncio.CancelledError:
            # Cancelled through Temporal (an operator): undo the freeze, if it was done.
            await self._compensate()
            self._cancel_reason = "cancelled by an operator"
            return Stage.CANCELLED
        return stage

    async def _beyond_point_of_no_return(self, stage: Stage) -> DeletionReceipt:
        """Steps 4 and 5: purge every product, release the identifiers, finalize."""
        while not stage.is_final:
            stage = await self._steps()[stage]()
        return await self._close(stage)

    # --- the steps -----------------------------------------------------------------------------

    async def _check_prerequisites(self) -> Stage:
        """Step 1: checks until nothing is pending, waiting in AWAITING_TASKS meanwhile."""
        deadline = self._tasks_deadline
        assert deadline is not None
        while True:
            await self._at.move_to(Stage.CHECKING_PREREQUISITES)
            self._at.pending_tasks = (
                await account.check_prerequisites(self._ref, self._policy)
            ).pending_tasks
            self._last_check_at = workflow.now()
            if not self._at.pending_tasks:
                if self._cancel_requested and workflow.patched(CANCEL_CHECKED_BEFORE_CODE):
                    return Stage.CANCELLED  # asked during the check: no code is sent
                # Confirmed already when the check after the freeze sent the run back here.
                return Stage.FREEZING if self._codes.verified else Stage.AWAITING_VERIFICATION
            if workflow.now() >= deadline:
                # Only after a last check at the deadline itself.
                self._cancel_reason = "pending tasks were not resolved in time"
                return Stage.EXPIRED
            self._recheck_requested = False
            self._at.deadline = deadline  # recorded with the stage (no command: replays as before)
            await self._at.move_to(Stage.AWAITING_TASKS)
            next_check = min(workflow.now() + self._policy.recheck_interval, deadline)
            await wait_until(lambda: self._recheck_requested or self._cancel_requested, next_check)
            if self._cancel_requested:
                return Stage.CANCELLED
            await self._continue_as_new_if_long(Stage.CHECKING_PREREQUISITES)

    async def _verify(self) -> Stage:
        """Step 2: a one-time code to the account's email or phone, until the right one."""
        self._at.deadline = workflow.now() + self._policy.verification_deadline
        await self._at.move_to(Stage.AWAITING_VERIFICATION)
        ended = await self._codes.until_right_code(
            self._at.deadline, lambda: self._cancel_requested
        )
        if ended is None:
            self._at.deadline = None
            return Stage.FREEZING
        if ended is Stage.EXPIRED:
            self._cancel_reason = "the deletion was never confirmed with a code"
        elif self._codes.failure is not None:
            self._cancel_reason = self._codes.failure
        return ended

    async def _freeze_and_check_again(self) -> Stage:
        """Step 3, the first saga step (compensated by unfreeze). Anything attached since the
        first check unfreezes the account and sends the run back to step 1."""
        await self._at.move_to(Stage.FREEZING)
        self._compensations.append(lambda: account.unfreeze(self._ref))
        try:
            if workflow.patched(FREEZE_FINISHES_BEFORE_UNFREEZE):
                await account.freeze_to_its_end(self._ref)
            else:
                await account.freeze(self._ref)
            report = await account.check_prerequisites(self._ref, self._policy)
        except ActivityError:
            await self._compensate()
            raise
        if report.pending_tasks:
            self._at.pending_tasks = report.pending_tasks
            await self._compensate()
            # New tasks late in the run: the user gets the full time again.
            self._tasks_deadline = workflow.now() + self._policy.tasks_deadline
            return Stage.CHECKING_PREREQUISITES
        if self._cancel_requested:
            await self._compensate()
            return Stage.CANCELLED
        self._compensations.clear()
        self._irrevocable = True  # the point of no return: no await since the cancel check
        return Stage.PURGING

    async def _purge_every_product(self) -> Stage:
        """Step 4: purges all products in parallel; failed ones wait for `retry_failed_purges`."""
        added = await self._purges.plan()
        while True:
            await self._at.move_to(Stage.PURGING)
            self._at.pending_tasks = []  # while the purges run
            self._at.pending_tasks = await self._purges.purge_unfinished(self._at.show_waiting)
            if not added and self._replans and workflow.patched(REPLANS_BACK_OFF):
                self._at.pending_tasks = await self._purges.registry_mismatch(self._replans)
                if self._at.pending_tasks:
                    self._replans = 0  # the operators' retry starts a new round
            if not self._at.pending_tasks:
                return Stage.RELEASING_IDENTIFIERS
            self._retry_requested = False
            await self._at.move_to(Stage.PURGE_BLOCKED)
            await workflow.wait_condition(lambda: self._retry_requested)
            # A long block goes on in a new run, which purges the failed products at once.
            await self._continue_as_new_if_long(Stage.PURGING)

    async def _release_identifiers_and_finalize(self) -> Stage:
        """Step 5: releases the identifiers (only now: every purge finished), then records the
        deletion and its receipt."""
        await self._at.move_to(Stage.RELEASING_IDENTIFIERS)
        await self._purges.purge_late_rows_of_own_workers()
        try:
            await account.release_identifiers(self._ref)
        except ActivityError as error:
            if error_type(error) != PURGES_UNFINISHED:
                raise
            # A product was added to the registry during this run: purge it too.
            self._replans += 1
            return Stage.PURGING
        self._identifiers_released = True
        assert self._requested_at is not None
        self._receipt = await account.finalize(
            FinalizeInput(
                account_id=self._request.account_id,
                workflow_id=workflow.info().workflow_id,
                requested_by=self._request.requested_by,
                requested_at=self._requested_at,
                products=self._purges.receipts_by_product(),
            )
        )
        return Stage.DELETED

    async def _close(self, stage: Stage) -> DeletionReceipt:
        """Ends the run: DELETED with the receipt `finalize_deletion` recorded (and a
        confirmation to the user), or CANCELLED/EXPIRED with a receipt saying why not."""
        if stage is Stage.DELETED:
            assert self._receipt is not None
            receipt = self._receipt
            # finalize_deletion wrote the deletion's row: only the search attribute moves.
            await self._at.move_to(stage, record=False)
            await account.send_confirmation()
        else:
            assert self._requested_at is not None
            receipt = await self._at.end(stage, self._requested_at, self._cancel_reason)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return receipt

    async def _continue_as_new_if_long(self, resume_at: Stage) -> None:
        """At the end of a long wait's round, a long history goes on in a new run."""
        if not history_is_long(self._policy.history_limit):
            return
        assert self._requested_at is not None
        carried = self._at.carried(
            resume_at, self._requested_at, self._tasks_deadline, verified=self._codes.verified
        )
        await continue_as_new(self._request, carried)

    async def _compensate(self) -> None:
        """Undoes the saga steps taken so far, the last one first."""
        while self._compensations:
            await self._compensations.pop()()

    # --- messages: signals for callers that need no answer, updates that answer truthfully ---

    @workflow.signal
    def submit_verification_code(self, request: SubmitCodeInput) -> None:
        if self._awaiting_code():
            self._codes.submit(request.code)

    @workflow.update
    async def verify_code(self, request: SubmitCodeInput) -> CodeCheck:
        """Attempts are checked one at a time in arrival order, with signalled ones."""
        reply: asyncio.Future[CodeCheck] = asyncio.get_running_loop().create_future()
        self._codes.submit(request.code, reply)
        return await reply

    @verify_code.validator
    def _verify_code_only_while_it_can_count(self, request: SubmitCodeInput) -> None:
        """Rejected before it reaches history: no code awaited, or it is locked or expired."""
        if not self._awaiting_code():
            raise not_awaited()
        self._codes.refuse_useless_submission()

    def _awaiting_code(self) -> bool:
        return self._at.stage is Stage.AWAITING_VERIFICATION and not self._codes.verified

    @workflow.signal
    def resend_verification_code(self, request: ResendCodeInput | None = None) -> None:
        if self._awaiting_code():
            self._codes.resend_requested = True

    @workflow.update
    async def request_resend(self, request: ResendCodeInput) -> None:
        self.resend_verification_code(request)

    @request_resend.validator
    def _resend_only_when_one_can_be_sent(self, request: ResendCodeInput) -> None:
        asks.refuse_unless(self._awaiting_code(), self._at.stage, "resend the code")
        self._codes.refuse_useless_resend()

    @workflow.signal
    def recheck_prerequisites(self, request: RecheckInput | None = None) -> None:
        self._recheck_requested = True

    @workflow.update
    async def request_recheck(self, request: RecheckInput) -> None:
        self.recheck_prerequisites(request)

    @request_recheck.validator
    def _recheck_only_while_waiting_and_not_too_often(self, request: RecheckInput) -> None:
        asks.refuse_unless(self._at.stage is Stage.AWAITING_TASKS, self._at.stage, "check again")
        asks.refuse_if_asked(self._recheck_requested, "a check")
        asks.refuse_if_sooner(self._last_check_at, self._policy.recheck_cooldown, "check")

    @workflow.signal
    def retry_failed_purges(self, request: RetryPurgesInput | None = None) -> None:
        self._retry_requested = True

    @workflow.update
    async def request_retry(self, request: RetryPurgesInput) -> None:
        self.retry_failed_purges(request)

    @request_retry.validator
    def _retry_only_while_blocked(self, request: RetryPurgesInput) -> None:
        blocked = self._at.stage is Stage.PURGE_BLOCKED
        asks.refuse_unless(blocked, self._at.stage, "retry the failed purges")
        asks.refuse_if_asked(self._retry_requested, "a retry")

    @workflow.update
    async def confirm_purge(self, request: ConfirmPurgeInput) -> None:
        """An operator's word that a person purged a `manual` product; who is in the receipt."""
        self._purges.confirm(request)

    @confirm_purge.validator
    def _confirm_only_a_manual_purge_awaiting_it(self, request: ConfirmPurgeInput) -> None:
        self._purges.refuse_confirmation(request)

    @workflow.signal
    def cancel(self, request: CancelInput | None = None) -> None:
        """Honoured only before the point of no return; ignored afterwards."""
        if self._cancellable() and not self._cancel_requested:
            self._cancel_requested = True
            self._cancel_reason = (request.reason if request else None) or "cancelled by the user"

    @workflow.update
    async def request_cancel(self, request: CancelInput) -> CancelOutcome:
        """Accepted only before the point of no return, and then always honoured: the run ends
        CANCELLED at its next step. Asked again, it answers the same."""
        self.cancel(request)
        assert self._cancel_reason is not None
        return CancelOutcome(stage=self._at.stage, reason=self._cancel_reason)

    @request_cancel.validator
    def _cancel_only_before_the_point_of_no_return(self, request: CancelInput) -> None:
        asks.refuse_cancel(self._cancellable(), self._at.stage)

    def _cancellable(self) -> bool:
        return self._at.stage.is_cancellable and not self._irrevocable

    @workflow.query
    def status(self) -> DeletionStatus:
        return DeletionStatus(
            account_id=self._request.account_id,
            workflow_id=workflow.info().workflow_id,
            stage=self._at.stage,
            requested_by=self._request.requested_by,
            pending_tasks=self._at.pending_tasks,
            products=list(self._purges.progress.values()),
            verification=self._codes.status if not self._codes.verified else None,
            verified=self._codes.verified,
            identifiers_released=self._identifiers_released,
            deadline=self._at.deadline,
            closed_reason=self._cancel_reason if self._at.stage.is_final else None,
            registry_version=self._purges.registry_version,
        )

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _policy(self) -> DeletionPolicy:
        return self._request.policy

    @property
    def _ref(self) -> AccountRef:
        return AccountRef(
            account_id=self._request.account_id, workflow_id=workflow.info().workflow_id
        )
