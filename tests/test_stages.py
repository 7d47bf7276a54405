"""The stage machine: one table says which stage may follow which, and nothing else moves."""

from __future__ import annotations

import pytest

from contract.stages import FIRST_STAGE, NEXT_STAGES, IllegalStageMove, Stage, check_move


def test_every_stage_is_in_the_table_and_every_successor_is_a_stage() -> None:
    assert set(NEXT_STAGES) == set(Stage)
    for successors in NEXT_STAGES.values():
        assert successors <= set(Stage)


def test_the_final_stages_are_the_endings_of_spec() -> None:
    assert {stage for stage in Stage if stage.is_final} == {
        Stage.DELETED,
        Stage.CANCELLED,
        Stage.EXPIRED,
        Stage.RESTORED,
    }


def test_cancellation_is_possible_only_before_the_point_of_no_return() -> None:
    assert {stage for stage in Stage if stage.is_cancellable} == {
        Stage.CHECKING_PREREQUISITES,
        Stage.AWAITING_TASKS,
        Stage.AWAITING_VERIFICATION,
        Stage.FREEZING,
        Stage.COOLING_OFF,
    }


def test_only_a_cooling_off_can_restore_and_it_ends_before_any_purge() -> None:
    assert {stage for stage in Stage if Stage.RESTORED in NEXT_STAGES[stage]} == {Stage.COOLING_OFF}
    assert {stage for stage in Stage if Stage.COOLING_OFF in NEXT_STAGES[stage]} == {Stage.FREEZING}
    # Its end is the point of no return; new tasks send it back (the account still frozen).
    assert NEXT_STAGES[Stage.COOLING_OFF] == {
        Stage.PURGING,
        Stage.CHECKING_PREREQUISITES,
        Stage.RESTORED,
        Stage.CANCELLED,
    }


def test_past_the_point_of_no_return_no_move_leads_back_or_to_a_cancellation() -> None:
    forward = {Stage.PURGING, Stage.PURGE_BLOCKED, Stage.RELEASING_IDENTIFIERS, Stage.DELETED}
    for stage in forward:
        assert NEXT_STAGES[stage] <= forward, stage


def test_every_stage_is_reachable_from_the_first_and_every_run_can_end() -> None:
    reached, frontier = {FIRST_STAGE}, [FIRST_STAGE]
    while frontier:
        for successor in NEXT_STAGES[frontier.pop()]:
            if successor not in reached:
                reached.add(successor)
                frontier.append(successor)
    assert reached == set(Stage)
    for stage in Stage:
        ends, frontier = set(), [stage]
        seen = {stage}
        while frontier:
            current = frontier.pop()
            if current.is_final:
                ends.add(current)
            for successor in NEXT_STAGES[current] - seen:
                seen.add(successor)
                frontier.append(successor)
        assert ends, f"a run in {stage} can never end"


def test_identifiers_are_released_only_after_purging() -> None:
    before = {stage for stage in Stage if Stage.RELEASING_IDENTIFIERS in NEXT_STAGES[stage]}
    assert before == {Stage.PURGING}
    assert {stage for stage in Stage if Stage.DELETED in NEXT_STAGES[stage]} == {
        Stage.RELEASING_IDENTIFIERS
    }


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Stage.AWAITING_VERIFICATION, Stage.PURGING),
        (Stage.PURGING, Stage.CANCELLED),
        (Stage.PURGE_BLOCKED, Stage.DELETED),
        (Stage.DELETED, Stage.CHECKING_PREREQUISITES),
        (Stage.EXPIRED, Stage.CANCELLED),
        (Stage.AWAITING_TASKS, Stage.RESTORED),
        (Stage.PURGING, Stage.RESTORED),
        (Stage.COOLING_OFF, Stage.DELETED),
        (Stage.RESTORED, Stage.COOLING_OFF),
    ],
)
def test_a_move_outside_the_table_is_refused(current: Stage, new: Stage) -> None:
    with pytest.raises(IllegalStageMove, match=f"from {current} to {new}"):
        check_move(current, new)


def test_the_moves_of_the_flow_are_allowed() -> None:
    for current, new in [
        (Stage.CHECKING_PREREQUISITES, Stage.AWAITING_TASKS),
        (Stage.AWAITING_TASKS, Stage.CHECKING_PREREQUISITES),
        (Stage.CHECKING_PREREQUISITES, Stage.AWAITING_VERIFICATION),
        (Stage.AWAITING_VERIFICATION, Stage.FREEZING),
        (Stage.FREEZING, Stage.CHECKING_PREREQUISITES),
        (Stage.FREEZING, Stage.PURGING),
        (Stage.FREEZING, Stage.COOLING_OFF),
        (Stage.COOLING_OFF, Stage.PURGING),
        (Stage.COOLING_OFF, Stage.CHECKING_PREREQUISITES),
        (Stage.COOLING_OFF, Stage.RESTORED),
        (Stage.COOLING_OFF, Stage.CANCELLED),
        (Stage.PURGING, Stage.PURGE_BLOCKED),
        (Stage.PURGE_BLOCKED, Stage.PURGING),
        (Stage.PURGING, Stage.RELEASING_IDENTIFIERS),
        (Stage.RELEASING_IDENTIFIERS, Stage.PURGING),
        (Stage.RELEASING_IDENTIFIERS, Stage.DELETED),
    ]:
        check_move(current, new)
