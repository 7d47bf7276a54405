"""The cooling-off window of the saga (SPEC "Cooling-off and restore"): after the freeze and
the second check, the account stays frozen and nothing is purged until the window ends, unless
the user restores the account (or cancels) first.

The workflow owns the run and makes the decision at the window's end (the point of no return);
this holds the window's own state (its end, the notices sent, a restore asked for), its durable
wait and its notices, which go out through the outbox while the run waits, so that a slow
gateway never holds back a restore. Deterministic (no I/O): every side effect is an activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.cooling_off import CoolingOffActivities
    from contract.cooling_off import (
        REMINDER_BEFORE_END,
        CoolingOffWindow,
        Notice,
        NoticeInput,
        notice_key,
    )
    from contract.errors import WRONG_STAGE
    from contract.models import DeletionPolicy
    from contract.stages import Stage
    from workflows import asks
    from workflows.account_calls import deliver_from_outbox
    from workflows.policies import DATABASE_RETRY, SHORT, wait_until
    from workflows.run_control import history_is_long


class CoolingOff:
    def __init__(
        self, account_id: str, policy: DeletionPolicy, carried: CoolingOffWindow | None
    ) -> None:
        self._account_id = account_id
        self._length = policy.cooling_off
        self._history_limit = policy.history_limit
        self.window = carried
        """None until the window begins; carried into the next run when it continues as new."""
        self.restore_requested = False
        self.restore_reason: str | None = None
        self._sending: dict[Notice, asyncio.Task[None]] = {}

    @property
    def due(self) -> bool:
        """The policy asks for a window and it has not been served yet."""
        return self._length > timedelta(0) and not self.over

    @property
    def over(self) -> bool:
        """The window ended and its last check found new tasks: the account stays frozen and
        purging follows the next clean check, without a second window."""
        return self.window is not None and self.window.over

    def begin(self) -> datetime:
        """Starts the window (a continued run keeps its own); returns when it ends."""
        if self.window is None:
            self.window = CoolingOffWindow(
                window_id=str(workflow.uuid4()), ends_at=workflow.now() + self._length
            )
            if self._length < 2 * REMINDER_BEFORE_END:
                self.window.notified.append(Notice.REMINDER)  # too short for one
        return self.window.ends_at

    def ended(self) -> bool:
        return self.window is not None and workflow.now() >= self.window.ends_at

    def end_with_new_tasks(self) -> None:
        assert self.window is not None
        self.window.over = True

    def ask_restore(self, reason: str | None) -> None:
        self.restore_requested = True
        self.restore_reason = reason or "restored by the user"

    def refuse_restore(self, stage: Stage, *, past_its_end: bool, cancelling: bool) -> None:
        """What `request_restore` refuses (before it reaches history): anything but a run in
        its cooling-off before the point of no return, or one already being cancelled."""
        if stage is Stage.COOLING_OFF and past_its_end:
            raise ApplicationError(
                "the cooling-off has ended: the deletion can no longer be stopped",
                type=WRONG_STAGE,
            )
        if stage is not Stage.COOLING_OFF:
            raise ApplicationError(
                f"cannot restore the account in stage {stage.value}: only during a cooling-off",
                type=WRONG_STAGE,
            )
        if cancelling:
            raise ApplicationError(
                "the deletion is being cancelled: the account will be unfrozen", type=WRONG_STAGE
            )
        asks.refuse_if_asked(self.restore_requested, "a restore")

    async def wait(self, stop: Callable[[], bool]) -> bool:
        """Waits until the window ends or `stop()` (a restore or a cancel): True; or until the
        history is long: False (the caller continues as new). Sends the notices that fall due
        meanwhile; those still being delivered when it returns are cancelled: a continued run
        sends them again (same outbox key), and at the window's end or a restore they no
        longer matter."""
        assert self.window is not None
        try:
            while not (stop() or self.ended()):
                if self._long():
                    return False
                self._send_due_notices()
                await wait_until(
                    lambda: stop() or self._long() or self._a_notice_finished(),
                    self._next_wake(),
                )
            return True
        finally:
            self._note_finished_notices()
            for sending in self._sending.values():
                sending.cancel()
            self._sending.clear()

    async def confirm_restored(self) -> None:
        """The restore's confirmation (the run has ended RESTORED; retried for a day)."""
        await self._send(Notice.RESTORED)

    # --- notices -------------------------------------------------------------------------------

    def _reminder_at(self) -> datetime:
        """A day before the end (windows shorter than two days have none: `begin`)."""
        assert self.window is not None
        return self.window.ends_at - REMINDER_BEFORE_END

    def _pending(self, notice: Notice) -> bool:
        assert self.window is not None
        return notice not in self.window.notified and notice not in self._sending

    def _send_due_notices(self) -> None:
        self._note_finished_notices()
        due = [Notice.STARTED]
        if workflow.now() >= self._reminder_at():
            due.append(Notice.REMINDER)
        for notice in due:
            if self._pending(notice):
                self._sending[notice] = asyncio.ensure_future(self._send(notice))

    def _next_wake(self) -> datetime:
        assert self.window is not None
        if self._pending(Notice.REMINDER):
            return min(self._reminder_at(), self.window.ends_at)
        return self.window.ends_at

    def _a_notice_finished(self) -> bool:
        return any(sending.done() for sending in self._sending.values())

    def _note_finished_notices(self) -> None:
        """Notices sent (or given up on after a day) are not sent again by a continued run."""
        assert self.window is not None
        for notice, sending in list(self._sending.items()):
            if sending.done():
                del self._sending[notice]
                if sending.cancelled():
                    continue
                if (error := sending.exception()) is not None:
                    workflow.logger.warning("%s notice not sent: %s", notice, type(error).__name__)
                self.window.notified.append(notice)

    async def _send(self, notice: Notice) -> None:
        window = self.window
        assert window is not None
        recorded = await workflow.execute_activity_method(
            CoolingOffActivities.record_cooling_off_notice,
            NoticeInput(
                account_id=self._account_id,
                workflow_id=workflow.info().workflow_id,
                window_id=window.window_id,
                notice=notice,
                purge_starts_at=window.ends_at,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=DATABASE_RETRY,
        )
        if recorded:
            await deliver_from_outbox(notice_key(notice, window.window_id), f"{notice} notice")

    def _long(self) -> bool:
        return history_is_long(self._history_limit)
