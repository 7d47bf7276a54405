"""AccountDeletion: one run per deletion, from the request to the released identifiers.

Reads like the flow in SPEC.md: one step per stage (`_steps`), each returning the stage that
comes next, moved through the stage machine of `contract.stages`. Steps 1 to 3 (check
prerequisites, verify, freeze and check again, and the cooling-off when the policy asks for
one) may still be cancelled; purging is the point of no return, after which the run only goes
forward (purge every product, release the identifiers, finalize). Every side effect is an
activity; the stage is kept current in the `status` query, the search attributes and the
deletion's row in PostgreSQL. The signals, updates and query are in `workflows.messages`.
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
        DeletionReceipt,
        DeletionRequest,
        FinalizeInput,
        PendingTask,
    )
    from contract.names import ACCOUNT_ID
    from contract.stages import Stage
    from workflows import account_calls as account
    from workflows.cooling_off import CoolingOff
    from workflows.failures import error_type
    from workflows.messages import DeletionMessages
    from workflows.patches import (
        CANCEL_CHECKED_BEFORE_CODE,
        FREEZE_FINISHES_BEFORE_UNFREEZE,
        REPLANS_BACK_OFF,
        Patches,
    )
    from workflows.policies import wait_until
    from workflows.purge import ProductPurges
    from workflows.run_control import continue_as_new, history_is_long, irrevocably
    from workflows.stage_machine import StageMachine
    from workflows.verification import CodeVerification

Step = Callable[[], Awaitable[Stage]]


@workflow.defn(name="AccountDeletion")
class AccountDeletion(DeletionMessages):
    """The saga; its signals, updates and query are `DeletionMessages`'."""

    @workflow.init
    def __init__(self, request: DeletionRequest) -> None:
        self._request = request
        carried = request.carried
        self._patches = Patches()
        self._requested_at: datetime | None = carried.requested_at if carried else None
        self._tasks_deadline: datetime | None = carried.tasks_deadline if carried else None
        self._purges = ProductPurges(request.account_id, request.policy, self._patches, carried)
        self._at = StageMachine(request, self._purges, self._patches)
        self._receipt: DeletionReceipt | None = None
        self._codes = CodeVerification(request.account_id, request.policy, self._patches)
        self._codes.verified = carried.verified if carried else False
        self._window = CoolingOff(
            request.account_id, request.policy, carried.cooling_off if carried else None
        )
        self._identifiers_released = False
        self._irrevocable = not self._at.stage.is_cancellable
        """Set in the same step that decides to purge: no cancellation is accepted after it."""
        self._replans = 0
        """Releases refused (PURGES_UNFINISHED) since the last successful plan or retry."""
        self._compensations: list[Callable[[], Awaitable[None]]] = []
        if self._window.window is not None and self._at.stage.is_cancellable:
            # Continued during or after a cooling-off: the account is frozen.
            self._compensations.append(lambda: account.unfreeze(self._ref))
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
            Stage.COOLING_OFF: self._cool_off,  # 3 (with a cooling-off)
            Stage.PURGING: self._purge_every_product,  # 4 (PURGE_BLOCKED)
            Stage.RELEASING_IDENTIFIERS: self._release_identifiers_and_finalize,  # 5
        }

    @workflow.run
    async def run(self, request: DeletionRequest) -> DeletionReceipt:
        self._patches.begin()
        self._requested_at = self._requested_at or workflow.now()
        self._at.keep_current(ACCOUNT_ID, request.account_id)
        self._tasks_deadline = self._tasks_deadline or (
            workflow.now() + self._policy.tasks_deadline
        )
        stage = self._at.stage
        if stage.is_cancellable:
            stage = await self._until_point_of_no_return(stage)
            if stage.is_final:
                await self._compensate()  # an account still frozen after its cooling-off
                return await self._close(stage)
        return await irrevocably(self._beyond_point_of_no_return(stage))

    async def _until_point_of_no_return(self, stage: Stage) -> Stage:
        """Steps 1 to 3, which may still be cancelled. Returns PURGING once the account is
        frozen and clear, or the stage the run ends in (CANCELLED, EXPIRED, RESTORED)."""
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
                if self._cancel_requested and self._patches.has(CANCEL_CHECKED_BEFORE_CODE):
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
        first check unfreezes the account (not after a cooling-off) and sends the run back to
        step 1."""
        await self._at.move_to(Stage.FREEZING)
        if not self._compensations:  # (after a cooling-off the account is frozen already)
            self._compensations.append(lambda: account.unfreeze(self._ref))
        try:
            if self._patches.has(FREEZE_FINISHES_BEFORE_UNFREEZE):
                await account.freeze_to_its_end(self._ref)
            else:
                await account.freeze(self._ref)
            report = await account.check_prerequisites(self._ref, self._policy)
        except ActivityError:
            await self._compensate()
            raise
        if report.pending_tasks:
            self._at.pending_tasks = report.pending_tasks
            if not self._window.over:
                await self._compensate()
            # New tasks late in the run: the user gets the full time again.
            self._tasks_deadline = workflow.now() + self._policy.tasks_deadline
            return Stage.CHECKING_PREREQUISITES
        if self._cancel_requested:
            await self._compensate()
            return Stage.CANCELLED
        if self._window.due:
            return Stage.COOLING_OFF  # frozen, nothing purged: its end is the point of no return
        self._compensations.clear()
        self._irrevocable = True  # the point of no return: no await since the cancel check
        return Stage.PURGING

    async def _cool_off(self) -> Stage:
        """Step 3 with a cooling-off: frozen, nothing purged, until the window ends; a restore
        or a cancel meanwhile unfreezes the account. From its end neither is accepted (the
        point of no return): a last check (a bill issued meanwhile is arrears) sends the run
        back to step 1, the account still frozen, or on to the purge."""
        self._at.purge_starts_at = self._window.begin()
        await self._at.move_to(Stage.COOLING_OFF)
        while not await self._window.wait(self._stopping):
            await self._continue_as_new_if_long(Stage.COOLING_OFF)
        self._at.purge_starts_at = None  # (the row keeps it until the next move)
        if self._stopping():
            await self._compensate()
            if not self._window.restore_requested:
                return Stage.CANCELLED
            self._cancel_reason = self._window.restore_reason
            return Stage.RESTORED
        tasks = await self._check_once_more()  # (nothing asked since its end is accepted)
        if tasks:
            self._at.pending_tasks = tasks
            self._window.end_with_new_tasks()  # the unfreeze stays the compensation
            self._tasks_deadline = workflow.now() + self._policy.tasks_deadline
            return Stage.CHECKING_PREREQUISITES
        self._compensations.clear()
        self._irrevocable = True  # the point of no return (nothing was accepted since the end)
        return Stage.PURGING

    async def _check_once_more(self) -> list[PendingTask]:
        return (await account.check_prerequisites(self._ref, self._policy)).pending_tasks

    def _stopping(self) -> bool:
        """A cancel or a restore was accepted: the run will end at its next step."""
        return self._cancel_requested or self._window.restore_requested

    async def _purge_every_product(self) -> Stage:
        """Step 4: purges all products in parallel; failed ones wait for `retry_failed_purges`."""
        added = await self._purges.plan()
        while True:
            await self._at.move_to(Stage.PURGING)
            self._at.pending_tasks = []  # while the purges run
            self._at.pending_tasks = await self._purges.purge_unfinished(self._at.show_waiting)
            if not added and self._replans and self._patches.has(REPLANS_BACK_OFF):
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
        confirmation to the user), or CANCELLED/EXPIRED/RESTORED with a receipt saying why not
        (a restore is confirmed to the user)."""
        if stage is Stage.DELETED:
            assert self._receipt is not None
            receipt = self._receipt
            # finalize_deletion wrote the deletion's row: only the search attribute moves.
            await self._at.move_to(stage, record=False)
            await account.send_confirmation()
        else:
            assert self._requested_at is not None
            receipt = await self._at.end(stage, self._requested_at, self._cancel_reason)
            if stage is Stage.RESTORED:
                await self._window.confirm_restored()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return receipt

    async def _continue_as_new_if_long(self, resume_at: Stage) -> None:
        """At the end of a long wait's round, a long history goes on in a new run."""
        if not history_is_long(self._policy.history_limit):
            return
        assert self._requested_at is not None
        carried = self._at.carried(
            resume_at,
            self._requested_at,
            self._tasks_deadline,
            verified=self._codes.verified,
            cooling_off=self._window.window,
        )
        await continue_as_new(self._request, carried)

    async def _compensate(self) -> None:
        """Undoes the saga steps taken so far, the last one first."""
        while self._compensations:
            await self._compensations.pop()()

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _ref(self) -> AccountRef:
        return AccountRef(
            account_id=self._request.account_id, workflow_id=workflow.info().workflow_id
        )
