"""How many rows the next purge batch of a table takes.

A batch is one transaction: it holds the locks of the rows it purges until it commits. With a
time budget, each table starts at the configured size and then sizes its next batch from the
time per row of its last full one, so that a transaction takes about the budget: a table of
narrow rows on an idle database goes in a few large batches (fewer round trips and commits),
a slow one (wide rows, a busy server) in smaller ones. Growth is bounded per batch, so one
fast batch cannot make the next one overshoot the budget by much.
"""

from __future__ import annotations

from datetime import timedelta

MAX_BATCH_BUDGET = timedelta(seconds=1)
"""No purge transaction may hold its locks longer than this: a budget must stay below it."""

MAX_BATCH_ROWS = 100_000
"""The largest batch, whatever the budget (the configured size, when larger, wins)."""

GROWTH = 4
"""A batch takes at most this many times the rows of the last one."""


class BatchSize:
    """The rows of a table's next batch: `start`, then, with a `budget`, what the last full
    batch's time per row says fits in it. Without a budget, always `start`."""

    def __init__(self, start: int, budget: timedelta | None = None) -> None:
        if budget is not None and not timedelta(0) < budget < MAX_BATCH_BUDGET:
            raise ValueError(f"a batch budget is more than 0 and less than {MAX_BATCH_BUDGET}")
        self.rows = start
        self._budget = None if budget is None else budget.total_seconds()
        self._max = max(start, MAX_BATCH_ROWS)

    def took(self, rows: int, seconds: float) -> None:
        """A batch asked for `self.rows` rows, purged `rows` of them in `seconds`."""
        if self._budget is None or rows <= 0:
            return
        if rows < self.rows and seconds <= self._budget:
            return  # the table's last batch: it says little about a full one
        fits = int(self._budget * rows / seconds) if seconds > 0 else self._max
        self.rows = max(1, min(fits, self.rows * GROWTH, self._max))
