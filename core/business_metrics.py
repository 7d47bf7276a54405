"""The product's business metrics, recorded through the Temporal SDK's metric meter
(`activity.metric_meter()`), so that they are served with the SDK's own metrics at the worker's
`/metrics` (WORKER_METRICS_ADDRESS) and carry its `namespace`, `task_queue` and `activity_type`
labels. No label holds an id or PII: stages, outcomes, channels and product names only.

Each is recorded once per event, after the transaction that recorded the event committed (a
retried activity that finds its change already recorded records nothing again).
"""

from __future__ import annotations

from temporalio.common import MetricMeter

DELETIONS_STARTED = "account_deletion_deletions_started"
DELETIONS_ENDED = "account_deletion_deletions_ended"
STAGE_SECONDS = "account_deletion_stage_seconds"
ROWS_PURGED = "account_deletion_rows_purged"
CODES_SENT = "account_deletion_codes_sent"
CODE_ATTEMPTS = "account_deletion_code_attempts"


class BusinessMetrics:
    """Each instrument is made when first used: an activity records one or two of them."""

    def __init__(self, meter: MetricMeter) -> None:
        self._meter = meter

    def stage_changed(
        self, stage: str, *, left: str | None, seconds: float | None, new: bool, final: bool
    ) -> None:
        """A recorded stage change: `left` the stage left after `seconds` (None for a new
        deletion), `final` when `stage` ends the deletion."""
        meter = self._meter
        if new:
            meter.create_counter(
                DELETIONS_STARTED, "deletions started (their first stage recorded)", "deletions"
            ).add(1)
        if left is not None and seconds is not None:
            meter.create_histogram_float(
                STAGE_SECONDS, "time a deletion spent in a stage, recorded as it leaves it", "s"
            ).record(max(seconds, 0.0), {"stage": left})
        if final:
            meter.create_counter(
                DELETIONS_ENDED, "deletions ended, by outcome (DELETED, CANCELLED, EXPIRED)"
            ).add(1, {"outcome": stage})

    def rows_purged(self, rows_by_product: dict[str, int]) -> None:
        counter = self._meter.create_counter(
            ROWS_PURGED, "rows purged (deleted or anonymised) by product, at each DELETED", "rows"
        )
        for product, rows in rows_by_product.items():
            if rows > 0:
                counter.add(rows, {"product": product})

    def code_sent(self, channel: str) -> None:
        self._meter.create_counter(CODES_SENT, "verification codes sent, by channel").add(
            1, {"channel": channel}
        )

    def code_checked(self, outcome: str) -> None:
        self._meter.create_counter(
            CODE_ATTEMPTS, "codes submitted, by outcome (wrong, expired, locked: failed)"
        ).add(1, {"outcome": outcome})
