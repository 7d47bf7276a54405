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
        CodeCheck,
        DeletionPolicy,
        DeletionReceipt,
        DeletionRequest,
        DeletionStatus,
        FinalizeInput,
        PendingTask,
        ProgressRecord,
        RecheckInput,
        ResendCodeInput,
        RetryPurgesInput,
        SubmitCodeInput,
    )
    from contract.names import ACCOUNT_ID, DELETION_STAGE
    from contract.stages import FIRST_STAGE, Stage, check_move
    from workflows import account_calls as account
    from workflows.failures import error_type
    from workflows.policies import wait_until
    from workflows.purge import ProductPurges
    from workflows.verification import CodeVerification, not_awaited

Step = Callable[[], Awaitable[Stage]]


@workflow.defn(name="AccountDeletion")
class AccountDeletion:
    @workflow.init
    def __init__(self, request: DeletionRequest) -> None:
        self._request = request
        self._stage = FIRST_STAGE
        self._stage_shown = False
        self._requested_at: datetime | None = None
        self._tasks_deadline: datetime | None = None
        self._deadline: datetime | None = None
        self._pending_tasks: list[PendingTask] = []
        self._purges = ProductPurges(request.account_id, request.policy)
        self._receipt: DeletionReceipt | None = None
        self._codes = CodeVerification(request.account_id, request.policy)
        self._identifiers_released = False
        self._compensations: list[Callable[[], Awaitable[None]]] = []
        # What the signals asked for; the run acts on it at its next step.
        self._recheck_requested = False
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
        self._requested_at = workflow.now()
        workflow.upsert_search_attributes([ACCOUNT_ID.value_set(request.account_id)])
        self._tasks_deadline = workflow.now() + self._policy.tasks_deadline
        stage = await self._until_point_of_no_return()
        if stage.is_final:
            return await self._close(stage)
        return await self._irrevocably(self._beyond_point_of_no_return())

    async def _until_point_of_no_return(self) -> Stage:
        """Steps 1 to 3, which may still be cancelled. Returns PURGING once the account is
        frozen and clear, or the stage the run ends in (CANCELLED, EXPIRED)."""
        stage = FIRST_STAGE
        try:
            while stage.is_cancellable:
                stage = await self._steps()[stage]()
        except asyncio.CancelledError:
            # Cancelled through Temporal (an operator): undo the freeze, if it was done.
            await self._compensate()
            self._cancel_reason = "cancelled by an operator"
            return Stage.CANCELLED
        return stage

    async def _beyond_point_of_no_return(self) -> DeletionReceipt:
        """Steps 4 and 5: purge every product, release the identifiers, finalize."""
        stage = Stage.PURGING
        while not stage.is_final:
            stage = await self._steps()[stage]()
        return await self._close(stage)

    async def _irrevocably(self, forward_work: Awaitable[DeletionReceipt]) -> DeletionReceipt:
        """Past the point of no return the deletion only goes forward, whatever is asked: a
        cancellation through Temporal is refused and the shielded work goes on."""
        forward = asyncio.ensure_future(forward_work)
        while True:
            try:
                return await asyncio.shield(forward)
            except asyncio.CancelledError:
                if forward.cancelling() or forward.cancelled():
                    # Not a request to stop the deletion (that cancels only this outer task):
                    # the worker is evicting the run from its cache and cancels every task.
                    raise
                workflow.logger.warning("cancellation refused: purging has begun")

    # --- the steps -----------------------------------------------------------------------------

    async def _check_prerequisites(self) -> Stage:
        """Step 1: checks until nothing is pending, waiting in AWAITING_TASKS meanwhile."""
        deadline = self._tasks_deadline
        assert deadline is not None
        while True:
            await self._move_to(Stage.CHECKING_PREREQUISITES)
            self._pending_tasks = (await account.check_prerequisites(self._ref)).pending_tasks
            if not self._pending_tasks:
                # Confirmed already when the check after the freeze sent the run back here.
                return Stage.FREEZING if self._codes.verified else Stage.AWAITING_VERIFICATION
            if workflow.now() >= deadline:
                # Only after a last check at the deadline itself.
                self._cancel_reason = "pending tasks were not resolved in time"
                return Stage.EXPIRED
            self._recheck_requested = False
            self._deadline = deadline  # recorded with the stage (no command: replays as before)
            await self._move_to(Stage.AWAITING_TASKS)
            next_check = min(workflow.now() + self._policy.recheck_interval, deadline)
            await wait_until(lambda: self._recheck_requested or self._cancel_requested, next_check)
            if self._cancel_requested:
                return Stage.CANCELLED

    async def _verify(self) -> Stage:
        """Step 2: a one-time code to the account's email or phone, until the right one."""
        self._deadline = workflow.now() + self._policy.verification_deadline
        await self._move_to(Stage.AWAITING_VERIFICATION)
        ended = await self._codes.until_right_code(self._deadline, lambda: self._cancel_requested)
        if ended is None:
            self._deadline = None
            return Stage.FREEZING
        if ended is Stage.EXPIRED:
            self._cancel_reason = "the deletion was never confirmed with a code"
        return ended

    async def _freeze_and_check_again(self) -> Stage:
        """Step 3, the first saga step (compensated by unfreeze). Anything attached since the
        first check unfreezes the account and sends the run back to step 1."""
        await self._move_to(Stage.FREEZING)
        self._compensations.append(lambda: account.unfreeze(self._ref))
        try:
            await account.freeze(self._ref)
            report = await account.check_prerequisites(self._ref)
        except ActivityError:
            await self._compensate()
            raise
        if report.pending_tasks:
            self._pending_tasks = report.pending_tasks
            await self._compensate()
            # New tasks late in the run: the user gets the full time again.
            self._tasks_deadline = workflow.now() + self._policy.tasks_deadline
            return Stage.CHECKING_PREREQUISITES
        if self._cancel_requested:
            await self._compensate()
            return Stage.CANCELLED
        self._compensations.clear()
        return Stage.PURGING

    async def _purge_every_product(self) -> Stage:
        """Step 4: purges all products in parallel; failed ones wait for `retry_failed_purges`."""
        await self._purges.plan()
        while True:
            await self._move_to(Stage.PURGING)
            self._pending_tasks = []  # while the purges run
            self._pending_tasks = await self._purges.purge_unfinished()
            if not self._pending_tasks:
                return Stage.RELEASING_IDENTIFIERS
            self._retry_requested = False
            await self._move_to(Stage.PURGE_BLOCKED)
            await workflow.wait_condition(lambda: self._retry_requested)

    async def _release_identifiers_and_finalize(self) -> Stage:
        """Step 5: releases the identifiers (only now: every purge finished), then records the
        deletion and its receipt."""
        await self._move_to(Stage.RELEASING_IDENTIFIERS)
        try:
            await account.release_identifiers(self._ref)
        except ActivityError as error:
            if error_type(error) != PURGES_UNFINISHED:
                raise
            # A product was added to the registry during this run: purge it too.
            return Stage.PURGING
        self._identifiers_released = True
        assert self._requested_at is not None
        self._receipt = await account.finalize(
            FinalizeInput(
                account_id=self._account_id,
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
            await self._move_to(stage, record=False)
            await account.send_confirmation()
        else:
            assert self._requested_at is not None
            self._deadline = None
            receipt = DeletionReceipt(
                account_id=self._account_id,
                workflow_id=workflow.info().workflow_id,
                outcome=stage,
                requested_by=self._request.requested_by,
                requested_at=self._requested_at,
                closed_at=workflow.now(),
                reason=self._cancel_reason,
            )
            await self._move_to(stage, receipt=receipt)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return receipt

    # --- the saga's compensation ---------------------------------------------------------------

    async def _compensate(self) -> None:
        """Undoes the saga steps taken so far, the last one first."""
        while self._compensations:
            await self._compensations.pop()()

    # --- the stage -----------------------------------------------------------------------------

    async def _move_to(
        self, stage: Stage, *, receipt: DeletionReceipt | None = None, record: bool = True
    ) -> None:
        """The one place the stage moves: only as `NEXT_STAGES` allows, shown at once in the
        search attributes, the run's current details and (`record`) the deletion's row."""
        if self._stage_shown:
            check_move(self._stage, stage)
        self._stage = stage
        self._stage_shown = True
        workflow.upsert_search_attributes([DELETION_STAGE.value_set(stage.value)])
        workflow.set_current_details(self._details())
        if not record:
            return
        await account.record_progress(
            ProgressRecord(
                account_id=self._account_id,
                workflow_id=workflow.info().workflow_id,
                run_id=workflow.info().run_id,
                requested_by=self._request.requested_by,
                stage=stage,
                pending_tasks=self._pending_tasks,
                products=list(self._purges.progress.values()),
                closed=stage.is_final,
                receipt=receipt,
                deadline=self._deadline,
            )
        )

    def _details(self) -> str:
        """What the Temporal UI shows as the run's current details (no PII)."""
        lines = [f"**{self._stage.value}**"]
        lines += [f"- {task.category.value}: {task.item}" for task in self._pending_tasks]
        lines += [
            f"- {p.product}: {p.state.value}" + (f" ({p.failure})" if p.failure else "")
            for p in self._purges.progress.values()
        ]
        return "\n".join(lines)

    # --- messages ------------------------------------------------------------------------------

    @workflow.signal
    def submit_verification_code(self, request: SubmitCodeInput) -> None:
        """For callers that need no answer; the outcome shows in the `status` query."""
        if self._awaiting_code():
            self._codes.submit(request.code)

    @workflow.update
    async def verify_code(self, request: SubmitCodeInput) -> CodeCheck:
        """Answers at once with the outcome, for the verification page. Attempts are checked
        one at a time in arrival order, together with signalled ones: no race between them."""
        reply: asyncio.Future[CodeCheck] = asyncio.get_running_loop().create_future()
        self._codes.submit(request.code, reply)
        return await reply

    @verify_code.validator
    def _verify_code_only_while_awaited(self, request: SubmitCodeInput) -> None:
        """Rejected before it reaches history: nothing is recorded for a code not awaited."""
        if not self._awaiting_code():
            raise not_awaited()

    def _awaiting_code(self) -> bool:
        return self._stage is Stage.AWAITING_VERIFICATION and not self._codes.verified

    @workflow.signal
    def resend_verification_code(self, request: ResendCodeInput | None = None) -> None:
        if self._stage is Stage.AWAITING_VERIFICATION:
            self._codes.resend_requested = True

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
            requested_by=self._request.requested_by,
            pending_tasks=self._pending_tasks,
            products=list(self._purges.progress.values()),
            verification=self._codes.status if not self._codes.verified else None,
            verified=self._codes.verified,
            identifiers_released=self._identifiers_released,
            deadline=self._deadline,
            closed_reason=self._cancel_reason if self._stage.is_final else None,
        )

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _policy(self) -> DeletionPolicy:
        return self._request.policy

    @property
    def _account_id(self) -> str:
        return self._request.account_id

    @property
    def _ref(self) -> AccountRef:
        return AccountRef(account_id=self._account_id, workflow_id=workflow.info().workflow_id)
