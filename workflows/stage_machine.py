"""The run's stage and what is shown with it, moved only as `contract.stages.NEXT_STAGES`
allows and shown at once three ways: the `DeletionStage` search attribute, the run's current
details in the Temporal UI, and the deletion's row in PostgreSQL (a local activity).

Deterministic (no I/O): the workflow's one way to change its stage.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from contract.cooling_off import CoolingOffWindow
    from contract.models import (
        CarriedState,
        DeletionReceipt,
        DeletionRequest,
        PendingTask,
        ProgressRecord,
    )
    from contract.names import DELETION_STAGE, DELETION_WAITING_ON, WAITING_ON_PEOPLE
    from contract.stages import FIRST_STAGE, Stage, check_move
    from workflows import account_calls as account
    from workflows.patches import SEARCH_ATTRIBUTES_FROM_START, Patches
    from workflows.purge import ProductPurges


class StageMachine:
    def __init__(self, request: DeletionRequest, purges: ProductPurges, patches: Patches) -> None:
        carried = request.carried
        self._request = request
        self._patches = patches
        self._purges = purges
        self.stage = carried.resume_at if carried else FIRST_STAGE
        """Before the first move: where the run starts (or resumes)."""
        self.moved = False
        self.pending_tasks: list[PendingTask] = carried.pending_tasks if carried else []
        self._waiting_on_people = False
        self.deadline: datetime | None = None
        """When the current wait ends the run as EXPIRED (shown in the status and the row)."""
        self.purge_starts_at: datetime | None = None
        """In COOLING_OFF: when the window ends (the row records it as its wait's deadline)."""

    async def move_to(
        self, stage: Stage, *, receipt: DeletionReceipt | None = None, record: bool = True
    ) -> None:
        """Refuses a move the table does not list (a bug: the workflow task fails and retries,
        the run stays where it was); `record` False when an activity already wrote the row."""
        if self.moved:
            check_move(self.stage, stage)
        self.stage = stage
        self.moved = True
        self.keep_current(DELETION_STAGE, stage.value)
        if record:
            await self.show(receipt)
        else:
            workflow.set_current_details(self.details())

    def keep_current(self, key: SearchAttributeKey[str], value: str) -> None:
        """Sets the search attribute; a run of this code upserts it only when its value changes
        (each upsert is an event and a visibility write; the start sets `AccountId` and the
        first stage)."""
        if (
            self._patches.has(SEARCH_ATTRIBUTES_FROM_START)
            and workflow.info().typed_search_attributes.get(key) == value
        ):
            return
        workflow.upsert_search_attributes([key.value_set(value)])

    async def show(self, receipt: DeletionReceipt | None = None) -> None:
        """Shows the stage with its current pending tasks and products, without a move: in the
        UI's current details and the deletion's row."""
        workflow.set_current_details(self.details())
        stage = self.stage
        await account.record_progress(
            ProgressRecord(
                account_id=self._request.account_id,
                workflow_id=workflow.info().workflow_id,
                run_id=workflow.info().run_id,
                requested_by=self._request.requested_by,
                stage=stage,
                pending_tasks=self.pending_tasks,
                products=list(self._purges.progress.values()),
                closed=stage.is_final,
                receipt=receipt,
                deadline=self.deadline or self.purge_starts_at,
            )
        )

    async def show_waiting(self) -> None:
        """While the purges run: the failed purges and the `manual` products waiting on people,
        as pending tasks; the latter also in the `DeletionWaitingOn` search attribute."""
        self.pending_tasks = self._purges.tasks_so_far()
        people = bool(self._purges.waiting_on_people())
        if people != self._waiting_on_people:
            self._waiting_on_people = people
            workflow.upsert_search_attributes(
                [
                    DELETION_WAITING_ON.value_set(WAITING_ON_PEOPLE)
                    if self._waiting_on_people
                    else DELETION_WAITING_ON.value_unset()
                ]
            )
        await self.show()

    def carried(
        self,
        resume_at: Stage,
        requested_at: datetime,
        tasks_deadline: datetime | None,
        *,
        verified: bool,
        cooling_off: CoolingOffWindow | None = None,
    ) -> CarriedState:
        """What the next run of this deletion starts from (continue-as-new)."""
        return CarriedState(
            resume_at=resume_at,
            requested_at=requested_at,
            tasks_deadline=tasks_deadline,
            verified=verified,
            pending_tasks=self.pending_tasks,
            products=list(self._purges.progress.values()),
            receipts=list(self._purges.receipts.values()),
            cooling_off=cooling_off,
        )

    async def end(
        self, stage: Stage, requested_at: datetime, reason: str | None
    ) -> DeletionReceipt:
        """Ends a run that deleted nothing (CANCELLED, EXPIRED): its receipt says why."""
        self.deadline = None
        receipt = DeletionReceipt(
            account_id=self._request.account_id,
            workflow_id=workflow.info().workflow_id,
            outcome=stage,
            requested_by=self._request.requested_by,
            requested_at=requested_at,
            closed_at=workflow.now(),
            reason=reason,
        )
        await self.move_to(stage, receipt=receipt)
        return receipt

    def details(self) -> str:
        """What the Temporal UI shows as the run's current details (no PII)."""
        lines = [f"**{self.stage.value}**"]
        if self.purge_starts_at is not None:
            lines.append(
                f"purging starts {self.purge_starts_at:%Y-%m-%d %H:%M} UTC unless restored"
            )
        lines += [f"- {task.category.value}: {task.item}" for task in self.pending_tasks]
        lines += [
            f"- {p.product}: {p.state.value}" + (f" ({p.failure})" if p.failure else "")
            for p in self._purges.progress.values()
        ]
        return "\n".join(lines)
