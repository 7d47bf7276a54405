"""The Python client for the console backend (and the API and CLI built on it).

Starts deletions idempotently, reads their status (from the running workflow, or from
PostgreSQL once the run is closed), and sends the user's and operators' signals after
checking that they fit the deletion's stage.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from contract.errors import ALREADY_ASKED
from contract.messages import RestoreInput
from contract.models import (
    CancelInput,
    CodeCheck,
    ConfirmPurgeInput,
    DeletionPolicy,
    DeletionReceipt,
    DeletionRequest,
    DeletionStatus,
    PurgeState,
    RecheckInput,
    ResendCodeInput,
    RetryPurgesInput,
    SubmitCodeInput,
)
from contract.names import ACCOUNT_ID, DELETION_STAGE, workflow_id_for
from contract.stages import Stage
from starter.closing import closed_after_its_final_stage
from starter.connection import connect as connect  # where the processes import it from
from starter.details import static_details
from starter.errors import (
    AccountAlreadyDeleted,
    AccountNotFound,
    ActionNotAllowed,
    DeletionNotFound,
    NoCodesLeft,
    TooSoon,
)
from starter.records import DEFAULT_OVERDUE_AFTER, DeletionPage, list_deletions, recorded_status
from starter.refusals import REFUSED_CODES, client_error, refusal_of
from store.code_limits import code_allowance
from store.progress import rows_purged
from store.resumption import purging_began, resumption, unfreeze_after_ended_run
from workflows.account_deletion import AccountDeletion

QUERY_TIMEOUT_SECONDS = 5.0
"""How long `status` waits for the running workflow before it reads the recorded row."""


@dataclass(frozen=True)
class StartedDeletion:
    workflow_id: str
    run_id: str
    started: bool
    """False when a deletion of this account was already in progress: that run is returned."""


class DeletionClient:
    def __init__(self, client: Client, pool: asyncpg.Pool, task_queue: str) -> None:
        self._client = client
        self._pool = pool
        self._task_queue = task_queue

    async def start(
        self,
        account_id: str,
        *,
        requested_by: str = "console",
        policy: DeletionPolicy | None = None,
        cooling_off: timedelta | None = None,
    ) -> StartedDeletion:
        """Starts a deletion, or returns the one already in progress for this account.
        `cooling_off` (at most 90 days) sets the policy's: purging waits for it, restorable."""
        policy = policy or DeletionPolicy()
        if cooling_off is not None:  # validated: a bad value is a ValidationError, nothing starts
            policy = DeletionPolicy.model_validate({**dict(policy), "cooling_off": cooling_off})
        status = await self._account_status(account_id)
        if status == "deleted":
            raise AccountAlreadyDeleted(f"account {account_id} is already deleted")
        workflow_id = workflow_id_for(account_id)
        running = await self._describe(account_id)
        if (
            running is not None
            and running.status == WorkflowExecutionStatus.RUNNING
            and not await closed_after_its_final_stage(self._handle(account_id), running)
        ):
            return StartedDeletion(workflow_id, running.run_id, started=False)
        if (wait := await self.code_limit_retry_after(account_id)) is not None:
            # The run could send no code: refuse before starting it.
            seconds = math.ceil(wait.total_seconds())
            raise TooSoon(
                f"no more codes can be sent to this account for {seconds} seconds",
                retry_after=seconds,
            )
        request = DeletionRequest(
            account_id=account_id,
            requested_by=requested_by,
            policy=policy,
            # A frozen account with no run: an earlier run ended (terminated) after the user
            # confirmed. Resume it where it stood; the freeze and the purges are idempotent.
            carried=await resumption(self._pool, account_id) if status == "frozen" else None,
        )
        handle = await self._client.start_workflow(
            AccountDeletion.run,
            request,
            id=workflow_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(ACCOUNT_ID, account_id),
                    SearchAttributePair(DELETION_STAGE, Stage.CHECKING_PREREQUISITES.value),
                ]
            ),
            static_summary=f"Deletion of account {account_id}, requested by {requested_by}",
            static_details=static_details(request),
        )
        assert handle.result_run_id is not None
        return StartedDeletion(workflow_id, handle.result_run_id, started=True)

    async def code_limit_retry_after(self, account_id: str) -> timedelta | None:
        """How long until the account may be sent a verification code again (at most
        `CODE_LIMIT` per account and per recipient in 24 hours, across runs); None if now."""
        async with self._pool.acquire() as conn:
            return (await code_allowance(conn, account_id)).retry_after

    async def _describe(self, account_id: str) -> WorkflowExecutionDescription | None:
        """The account's latest deletion run (running or closed); None if it never had one."""
        try:
            return await self._handle(account_id).describe()
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            return None

    async def unfreeze(self, account_id: str, operator: str) -> None:
        """For an operator: unfreezes an account whose deletion run ended (terminated) before
        purging began. Refused while a run is in progress, or once purging began (then a new
        start finishes the deletion instead)."""
        if await self._account_status(account_id) != "frozen":
            raise ActionNotAllowed(f"account {account_id} is not frozen", Stage.CANCELLED)
        latest = await self._describe(account_id)
        if latest is not None and latest.status == WorkflowExecutionStatus.RUNNING:
            stage = (await self.status(account_id)).stage
            raise ActionNotAllowed("a deletion is in progress: cancel it instead", stage)
        if await purging_began(self._pool, account_id):
            raise ActionNotAllowed(
                "purging had begun and cannot be undone: start the deletion again to finish it",
                Stage.PURGING,
            )
        await unfreeze_after_ended_run(self._pool, account_id, operator)

    async def current_run_id(self, account_id: str) -> str | None:
        """The id of the account's latest deletion run (running or closed), if any."""
        latest = await self._describe(account_id)
        return latest.run_id if latest is not None else None

    async def status(self, account_id: str) -> DeletionStatus:
        """From the running workflow; from PostgreSQL once the run is closed."""
        await self._account_status(account_id)
        handle = self._handle(account_id)
        description = await self._describe(account_id)
        if description is not None and description.status == WorkflowExecutionStatus.RUNNING:
            try:
                # A query needs a worker; with none polling it would wait ~30 s and fail.
                async with asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                    status = await handle.query(AccountDeletion.status)
            except (TimeoutError, RPCError):
                # The row in PostgreSQL is kept in step with every stage change.
                return await self._recorded_status(account_id)
            return await self._with_purge_progress(status)
        return await self._recorded_status(account_id)

    async def _with_purge_progress(self, status: DeletionStatus) -> DeletionStatus:
        """Fills in the rows purged so far by running (or failed) purges: committed per batch."""
        running = [p for p in status.products if p.state in (PurgeState.RUNNING, PurgeState.FAILED)]
        if not running:
            return status
        rows = await rows_purged(self._pool, status.account_id)
        for progress in running:
            progress.rows = rows.get(progress.product, 0)
        return status

    async def receipt(self, account_id: str) -> DeletionReceipt:
        await self._account_status(account_id)
        row = await self._pool.fetchval(
            "select receipt from deletions where account_id = $1 and receipt is not null",
            account_id,
        )
        if row is None:
            raise DeletionNotFound(f"no finished deletion for account {account_id}")
        return DeletionReceipt.model_validate(row)

    async def submit_code(self, account_id: str, code: str) -> None:
        """Hands the code on without waiting for the outcome (which the status then shows)."""
        request = SubmitCodeInput(code=code)
        await self._require(account_id, {Stage.AWAITING_VERIFICATION}, "submit a code")
        await self._handle(account_id).signal(AccountDeletion.submit_verification_code, request)

    async def verify(
        self, account_id: str, code: str, *, idempotency_key: str | None = None
    ) -> CodeCheck:
        """Checks the code and answers with the outcome (a workflow update).

        With an `idempotency_key` the key is the update's id: Temporal runs an update once per
        id and run, and answers a repeat with the first one's outcome, even once the stage has
        moved on (the stage is then not checked first: the run's validator still refuses a
        new code that is not awaited).
        """
        request = SubmitCodeInput(code=code)
        if idempotency_key is None:
            await self._require(account_id, {Stage.AWAITING_VERIFICATION}, "submit a code")
        else:
            await self._account_status(account_id)
        try:
            return await self._handle(account_id).execute_update(
                AccountDeletion.verify_code,
                request,
                id=None if idempotency_key is None else f"verify-{idempotency_key}",
            )
        except (WorkflowUpdateFailedError, RPCError) as error:
            if isinstance(error, RPCError) and error.status != RPCStatusCode.NOT_FOUND:
                raise
            # A code that could not count (refused before it reached history) is answered
            # as if checked; otherwise the stage moved on, or the run has closed.
            refusal = refusal_of(error)
            if refusal is not None and refusal.type in REFUSED_CODES:
                status = await self.status(account_id)
                attempts = status.verification.attempts_left if status.verification else 0
                return CodeCheck(outcome=REFUSED_CODES[refusal.type], attempts_left=attempts)
            stage = (await self.status(account_id)).stage
            raise ActionNotAllowed(f"cannot submit a code in stage {stage.value}", stage) from error

    async def resend_code(self, account_id: str) -> DeletionStatus:
        status = await self._require(account_id, {Stage.AWAITING_VERIFICATION}, "resend the code")
        verification = status.verification
        if verification is not None:
            if verification.codes_left <= 0:
                raise NoCodesLeft(
                    "no more codes can be sent for this deletion; cancel and start again"
                )
            # The workflow decides on its own clock (and sends an early resend once the
            # interval has passed); this answer only spares the user a silent wait.
            now = datetime.now(UTC)
            if now < verification.next_resend_at:
                wait = int((verification.next_resend_at - now).total_seconds()) + 1
                raise TooSoon(f"a new code can be sent in {wait} seconds", retry_after=wait)
        if (limit := await self.code_limit_retry_after(account_id)) is not None:
            seconds = math.ceil(limit.total_seconds())
            raise TooSoon(f"no more codes can be sent today: ask in {seconds} seconds", seconds)
        await self._ask(account_id, AccountDeletion.request_resend, ResendCodeInput(), "resend")
        return status

    async def recheck(self, account_id: str) -> None:
        await self._require(account_id, {Stage.AWAITING_TASKS}, "check the pending tasks again")
        await self._ask(account_id, AccountDeletion.request_recheck, RecheckInput(), "recheck")

    async def retry(self, account_id: str) -> None:
        await self._require(account_id, {Stage.PURGE_BLOCKED}, "retry the failed purges")
        await self._ask(account_id, AccountDeletion.request_retry, RetryPurgesInput(), "retry")

    async def confirm_purge(self, account_id: str, product: str, confirmed_by: str) -> None:
        """An operator's word that a person purged a `manual` product (its instructions are the
        pending task). Who confirmed goes to the audit log and the receipt; refused
        (ProductNotFound) for a product that is not a manual one of this deletion, and
        (ActionNotAllowed) when it does not await confirmation."""
        await self._require(account_id, {Stage.PURGING}, f"confirm the purge of {product}")
        confirm = ConfirmPurgeInput(product=product, confirmed_by=confirmed_by)
        await self._ask(
            account_id, AccountDeletion.confirm_purge, confirm, f"confirm the purge of {product}"
        )

    async def cancel(self, account_id: str, reason: str | None = None) -> None:
        """Answers only once the run has accepted the cancellation, which it then honours;
        refused (ActionNotAllowed) from the point of no return on."""
        cancel = CancelInput(reason=reason)
        await self._ask(account_id, AccountDeletion.request_cancel, cancel, "be cancelled")

    async def restore(self, account_id: str, reason: str | None = None) -> None:
        """Stops the deletion during its cooling-off and gives the account back, unfrozen (the
        run ends RESTORED). Answers once the run accepted it, which it then always honours;
        refused (ActionNotAllowed) outside the window, from its end on."""
        restore = RestoreInput(reason=reason)
        await self._ask(account_id, AccountDeletion.request_restore, restore, "be restored")

    async def _ask(self, account_id: str, update: Any, request: BaseModel, verb: str) -> None:
        """Sends an update and turns its validator's refusal into the client's errors: a
        request already standing is the effect of one; too soon is TooSoon; the wrong stage,
        or a run that has ended, is ActionNotAllowed."""
        try:
            await self._handle(account_id).execute_update(update, request)
            return
        except (WorkflowUpdateFailedError, RPCError) as error:
            if isinstance(error, RPCError) and error.status != RPCStatusCode.NOT_FOUND:
                raise
            refusal = refusal_of(error)
            if refusal is not None and refusal.type == ALREADY_ASKED:
                return
            if refusal is not None and (known := client_error(refusal)) is not None:
                raise known from error
            stage = (await self.status(account_id)).stage
            message = refusal.message if refusal else f"cannot {verb} in stage {stage.value}"
            raise ActionNotAllowed(message, stage) from error

    async def list(
        self,
        stage: Stage | None = None,
        limit: int = 50,
        *,
        overdue: bool = False,
        overdue_after: timedelta = DEFAULT_OVERDUE_AFTER,
        cursor: str | None = None,
    ) -> DeletionPage:
        """Deletions recorded in PostgreSQL, most recently changed first, a page at a time (a
        snapshot: `starter.records.list_deletions`), optionally only those in one stage and/or
        only the overdue ones.

        An open deletion is overdue when
        - it waits with a deadline (AWAITING_TASKS, AWAITING_VERIFICATION, COOLING_OFF until its
          purge starts) and the deadline has passed: the run should have moved on by now, so no
          worker is moving it; or
        - it is in any other stage (PURGE_BLOCKED waiting for a fix and a retry, or a working
          stage such as PURGING) and has not changed stage for longer than `overdue_after`.
        """
        return await list_deletions(
            self._pool, stage, limit, overdue=overdue, overdue_after=overdue_after, cursor=cursor
        )

    async def handle(self, account_id: str) -> WorkflowHandle[AccountDeletion, DeletionReceipt]:
        await self._account_status(account_id)
        return self._handle(account_id)

    # --- helpers -------------------------------------------------------------------------------

    def _handle(self, account_id: str) -> WorkflowHandle[AccountDeletion, DeletionReceipt]:
        return self._client.get_workflow_handle_for(
            AccountDeletion.run, workflow_id_for(account_id)
        )

    async def _account_status(self, account_id: str) -> str:
        status: str | None = await self._pool.fetchval(
            "select status from accounts where account_id = $1", account_id
        )
        if status is None:
            raise AccountNotFound(f"no account {account_id}")
        return status

    async def _require(self, account_id: str, stages: set[Stage], action: str) -> DeletionStatus:
        status = await self.status(account_id)
        if status.stage not in stages:
            raise ActionNotAllowed(f"cannot {action} in stage {status.stage.value}", status.stage)
        return status

    async def _recorded_status(self, account_id: str) -> DeletionStatus:
        status = await recorded_status(self._pool, account_id)
        if status is None:
            raise DeletionNotFound(f"no deletion was requested for account {account_id}")
        return status
