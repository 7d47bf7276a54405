"""The changes of the saga's command sequence, each behind `workflow.patched` so that runs begun
by older code replay as they ran (tests/test_replay.py), and the one patch a new run takes
instead of them all.

Each `workflow.patched` that returns True costs its run a marker event and an upsert of the
`TemporalChangeVersion` search attribute (a visibility write). A run begun by this code takes
`CURRENT_SEQUENCE` once, at its start, and with it every change listed here, without a marker
each: two to four per deletion fewer. Runs begun before it find no such marker and ask each
change on its own, as they did.

Deterministic (no I/O). A change made after this one gets its own `workflow.patched` as usual,
until a new `CURRENT_SEQUENCE` id takes it in too.
"""

from __future__ import annotations

from temporalio import workflow

CANCEL_CHECKED_BEFORE_CODE = "cancel-checked-before-code"
FREEZE_FINISHES_BEFORE_UNFREEZE = "freeze-finishes-before-unfreeze"
REPLANS_BACK_OFF = "replans-back-off"
UNDELIVERABLE_CODE_ENDS_VERIFICATION = "undeliverable-code-ends-verification"
"""Before it, a code that could not be sent failed the run."""
PRODUCT_DRIVERS = "product-drivers"
"""The plan records each product's driver (`plan_products`); earlier runs recorded the names
alone (`list_products`): all their products are `sql`."""
LATE_ROWS_OF_PRODUCT_WORKERS = "late-rows-of-product-workers"
"""Before identifiers are released, `worker` products purge again what they wrote since their
purge (as `release_identifiers` does for the built-in ones)."""
SEARCH_ATTRIBUTES_FROM_START = "search-attributes-from-start"
"""Only taken with `CURRENT_SEQUENCE`: `AccountId` and the first stage are those the start set
(`starter/client.py`), and a search attribute is upserted only when its value changes."""

CURRENT_SEQUENCE = "sequence-2026-12"
"""The patch of a run begun by this code: every change above, under one marker."""

TAKEN_WITH_CURRENT_SEQUENCE = frozenset(
    {
        CANCEL_CHECKED_BEFORE_CODE,
        FREEZE_FINISHES_BEFORE_UNFREEZE,
        REPLANS_BACK_OFF,
        UNDELIVERABLE_CODE_ENDS_VERIFICATION,
        PRODUCT_DRIVERS,
        LATE_ROWS_OF_PRODUCT_WORKERS,
        SEARCH_ATTRIBUTES_FROM_START,
    }
)


class Patches:
    """Which changes a run takes; one per run, asked through `has`."""

    def __init__(self) -> None:
        self._current: bool | None = None

    def begin(self) -> None:
        """At the run's start, before any command: a run of this code takes `CURRENT_SEQUENCE`
        (a replay of an older run finds no marker for it, and asks each change later)."""
        self._current = workflow.patched(CURRENT_SEQUENCE)

    def has(self, change: str) -> bool:
        """Whether the run takes `change`."""
        if self._current is None:
            raise RuntimeError("Patches.begin must be called at the run's start")
        if self._current and change in TAKEN_WITH_CURRENT_SEQUENCE:
            return True
        if change == SEARCH_ATTRIBUTES_FROM_START:
            return False  # (never a marker of its own: older runs upserted every move)
        return workflow.patched(change)
