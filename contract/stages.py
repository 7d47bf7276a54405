"""The stages of a deletion and the moves between them."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    CHECKING_PREREQUISITES = "CHECKING_PREREQUISITES"
    AWAITING_TASKS = "AWAITING_TASKS"
    AWAITING_VERIFICATION = "AWAITING_VERIFICATION"
    FREEZING = "FREEZING"
    PURGING = "PURGING"
    PURGE_BLOCKED = "PURGE_BLOCKED"
    RELEASING_IDENTIFIERS = "RELEASING_IDENTIFIERS"
    DELETED = "DELETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in (Stage.DELETED, Stage.CANCELLED, Stage.EXPIRED)

    @property
    def is_cancellable(self) -> bool:
        """Before the point of no return (the first purge) the user may still cancel."""
        return self in (
            Stage.CHECKING_PREREQUISITES,
            Stage.AWAITING_TASKS,
            Stage.AWAITING_VERIFICATION,
            Stage.FREEZING,
        )
