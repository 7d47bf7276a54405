"""The stages of a deletion and the moves between them.

`NEXT_STAGES` is the whole stage machine: the workflow moves the stage through one function
that refuses any move not listed here, so the table is the truth about what can follow what.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Stage(StrEnum):
    CHECKING_PREREQUISITES = "CHECKING_PREREQUISITES"
    AWAITING_TASKS = "AWAITING_TASKS"
    AWAITING_VERIFICATION = "AWAITING_VERIFICATION"
    FREEZING = "FREEZING"
    COOLING_OFF = "COOLING_OFF"
    PURGING = "PURGING"
    PURGE_BLOCKED = "PURGE_BLOCKED"
    RELEASING_IDENTIFIERS = "RELEASING_IDENTIFIERS"
    DELETED = "DELETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    RESTORED = "RESTORED"

    @property
    def is_final(self) -> bool:
        return not NEXT_STAGES[self]

    @property
    def is_cancellable(self) -> bool:
        """Before the point of no return (the first purge, or the end of the cooling-off) the
        user may still cancel."""
        return Stage.CANCELLED in NEXT_STAGES[self]


FIRST_STAGE = Stage.CHECKING_PREREQUISITES

NEXT_STAGES: Mapping[Stage, frozenset[Stage]] = {
    # 1. Prerequisites: none pending goes on to the code (or straight to the freeze when the
    #    user already confirmed and the check after the freeze sent the run back here).
    Stage.CHECKING_PREREQUISITES: frozenset(
        {
            Stage.AWAITING_TASKS,
            Stage.AWAITING_VERIFICATION,
            Stage.FREEZING,
            Stage.EXPIRED,
            Stage.CANCELLED,
        }
    ),
    Stage.AWAITING_TASKS: frozenset({Stage.CHECKING_PREREQUISITES, Stage.CANCELLED}),
    # 2. Verification.
    Stage.AWAITING_VERIFICATION: frozenset({Stage.FREEZING, Stage.EXPIRED, Stage.CANCELLED}),
    # 3. Freeze and check again: anything new goes back to the check (account unfrozen).
    Stage.FREEZING: frozenset(
        {Stage.PURGING, Stage.COOLING_OFF, Stage.CHECKING_PREREQUISITES, Stage.CANCELLED}
    ),
    #    With a cooling-off (DeletionPolicy.cooling_off): frozen, nothing purged, until it ends
    #    (a last check: new tasks go back to the check, the account still frozen) or the user
    #    restores the account or cancels.
    Stage.COOLING_OFF: frozenset(
        {Stage.PURGING, Stage.CHECKING_PREREQUISITES, Stage.RESTORED, Stage.CANCELLED}
    ),
    # 4. Purge: the point of no return; from here the run only goes forward.
    Stage.PURGING: frozenset({Stage.PURGE_BLOCKED, Stage.RELEASING_IDENTIFIERS}),
    Stage.PURGE_BLOCKED: frozenset({Stage.PURGING}),
    # 5. Release, only after every purge finished (a product added meanwhile is purged first).
    Stage.RELEASING_IDENTIFIERS: frozenset({Stage.DELETED, Stage.PURGING}),
    Stage.DELETED: frozenset(),
    Stage.CANCELLED: frozenset(),
    Stage.EXPIRED: frozenset(),
    Stage.RESTORED: frozenset(),
}


class IllegalStageMove(RuntimeError):
    """A move the stage machine does not allow: a bug in the workflow, never the user's doing.

    Raised inside the workflow it fails the workflow task (not the run), which Temporal retries:
    the run stays where it was, visible to operators, until a fixed worker takes it over.
    """


def check_move(current: Stage, new: Stage) -> None:
    if new not in NEXT_STAGES[current]:
        raise IllegalStageMove(f"a deletion cannot move from {current} to {new}")
