"""The events the console backend receives at EVENTS_WEBHOOK_URL (SPEC, "Events for the
console backend"). Ids, stages, a count and times only: never an email, phone or code."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contract.stages import Stage

STAGE_CHANGED = "deletion.stage_changed"


class StageChanged(BaseModel):
    """One stage change of one deletion, as POSTed (JSON) to the console backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["deletion.stage_changed"] = "deletion.stage_changed"
    account_id: str
    workflow_id: str
    stage: Stage
    previous_stage: Stage | None
    """None for the first event of a deletion."""
    pending_tasks: int
    """How many pending tasks the deletion shows in its new stage (a count, no details)."""
    at: datetime
    """When the stage was recorded (UTC)."""
    sequence: int
    """Increases with every stage change of every deletion, in the order they were recorded:
    a receiver that sees a lower `sequence` for a deletion than one it already applied has a
    duplicate in hand."""
