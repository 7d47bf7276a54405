"""The messages a deletion run answers: signals for callers that need no answer, updates that
answer truthfully (their validators refuse, before anything reaches history, what could change
nothing: `workflows.asks`), and the `status` query.

`AccountDeletion` (the saga, `workflows.account_deletion`) inherits them: they only note what
was asked, and the saga acts on it at its next step. Deterministic (no I/O).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contract.messages import (
        CancelInput,
        CancelOutcome,
        RecheckInput,
        ResendCodeInput,
        RestoreInput,
        RetryPurgesInput,
        SubmitCodeInput,
    )
    from contract.models import (
        CodeCheck,
        ConfirmPurgeInput,
        DeletionPolicy,
        DeletionRequest,
        DeletionStatus,
    )
    from contract.stages import Stage
    from workflows import asks
    from workflows.cooling_off import CoolingOff
    from workflows.purge import ProductPurges
    from workflows.stage_machine import StageMachine
    from workflows.verification import CodeVerification, not_awaited


class DeletionMessages:
    """The signal, update and query handlers of a run, over the state the saga keeps."""

    _request: DeletionRequest
    _at: StageMachine
    _codes: CodeVerification
    _purges: ProductPurges
    _window: CoolingOff
    _identifiers_released: bool
    _irrevocable: bool
    _recheck_requested: bool
    _last_check_at: datetime | None
    _retry_requested: bool
    _cancel_reason: str | None
    _cancel_requested: bool

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
    def restore(self, request: RestoreInput | None = None) -> None:
        """Honoured only during a cooling-off, before its end; ignored otherwise."""
        if self._restorable() and not self._window.restore_requested:
            self._window.ask_restore(request.reason if request else None)

    @workflow.update
    async def request_restore(self, request: RestoreInput) -> None:
        """Accepted only during a cooling-off, before its end, and then always honoured: the
        account is unfrozen and the run ends RESTORED at its next step."""
        self.restore(request)

    @request_restore.validator
    def _restore_only_while_cooling_off(self, request: RestoreInput) -> None:
        self._window.refuse_restore(
            self._at.stage, past_its_end=self._past_cooling_off(), cancelling=self._cancel_requested
        )

    def _restorable(self) -> bool:
        in_window = self._at.stage is Stage.COOLING_OFF and not self._past_cooling_off()
        return in_window and not self._cancel_requested

    def _past_cooling_off(self) -> bool:
        """From the window's end (its time, even before the run acted on its timer) no cancel
        or restore is accepted: that is the point of no return."""
        return self._irrevocable or self._window.ended()

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
        asks.refuse_cancel(self._cancellable(), self._at.stage, self._window.restore_requested)

    def _cancellable(self) -> bool:
        if self._at.stage is Stage.COOLING_OFF and self._past_cooling_off():
            return False
        restoring = self._window.restore_requested
        return self._at.stage.is_cancellable and not self._irrevocable and not restoring

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
            purge_starts_at=self._at.purge_starts_at,
            registry_version=self._purges.registry_version,
        )

    @property
    def _policy(self) -> DeletionPolicy:
        return self._request.policy
