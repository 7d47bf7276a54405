"""How the CLI shows deletions to operators: plain text that reads well in a terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from contract.models import (
    DeletionStatus,
    ProductDriver,
    ProductProgress,
    PurgeState,
    TaskCategory,
)
from contract.names import product_task_queue

if TYPE_CHECKING:
    from starter.records import ListedDeletion

_MARK = {
    PurgeState.PENDING: "·",
    PurgeState.RUNNING: "…",
    PurgeState.AWAITING_CONFIRMATION: "?",
    PurgeState.SUCCEEDED: "✓",
    PurgeState.FAILED: "✗",
}

BAR_WIDTH = 24


@dataclass(frozen=True)
class RowCount:
    """One product's rows for a progress bar: purged so far and still to purge, read together."""

    purged: int
    remaining: int

    @property
    def total(self) -> int:
        return self.purged + self.remaining


def render_status(status: DeletionStatus, progress: Mapping[str, RowCount] | None = None) -> str:
    """The deletion's status; with `progress` each product gets a bar of its rows purged."""
    lines = [
        f"account      {status.account_id}",
        f"workflow     {status.workflow_id}",
        f"stage        {status.stage.value}",
        f"requested by {status.requested_by}",
    ]
    if status.deadline:
        lines.append(f"deadline     {status.deadline:%Y-%m-%d %H:%M:%S} UTC")
    if status.purge_starts_at:
        lines.append(
            f"purge starts {status.purge_starts_at:%Y-%m-%d %H:%M:%S} UTC"
            " (cooling-off: `restore` gives the account back until then)"
        )
    if status.verification:
        v = status.verification
        lines.append(
            f"code         sent by {v.channel} to {v.destination}, expires "
            f"{v.code_expires_at:%H:%M:%S} UTC, {v.attempts_left} attempt(s) left"
            + (f", last: {v.last_outcome.value}" if v.last_outcome else "")
        )
    lines.append(f"identifiers  {'released' if status.identifiers_released else 'held'}")
    if status.closed_reason:
        lines.append(f"reason       {status.closed_reason}")
    if status.pending_tasks:
        lines.append(f"pending tasks ({len(status.pending_tasks)}):")
        for task in status.pending_tasks:
            lines.append(f"  - [{task.category.value}] {task.item}")
            lines.append(f"      {task.message}")
            lines.append(f"      to resolve: {task.resolution}")
    if status.products and progress is not None:
        lines += _progress_lines(status.products, progress)
    elif status.products:
        lines.append("products:")
        for product in status.products:
            detail = ""
            if product.state is PurgeState.SUCCEEDED:
                detail = _rows(product.rows)
            elif product.state is PurgeState.RUNNING:
                detail = f"{_rows(product.rows)} so far"
            if product.failure:
                detail = product.failure
            lines.append(
                f"  {_MARK[product.state]} {product.product:<16} {product.state.value:<10} {detail}"
                + _waiting(product)
            )
    return "\n".join(lines)


def _progress_lines(
    products: Sequence[ProductProgress], progress: Mapping[str, RowCount]
) -> list[str]:
    counts = {
        p.product: progress.get(p.product, RowCount(purged=p.rows, remaining=0)) for p in products
    }
    purged = sum(count.purged for count in counts.values())
    total = sum(count.total for count in counts.values())
    done = sum(1 for p in products if p.state is PurgeState.SUCCEEDED)
    lines = [
        f"products: {done} of {len(products)} purged, {purged:,} of {total:,} rows"
        f" ({_percent(purged, total, done == len(products))})"
    ]
    figures = {name: f"{count.purged:,}/{count.total:,} rows" for name, count in counts.items()}
    width = max(len(text) for text in figures.values())
    for product in products:
        count = counts[product.product]
        finished = product.state is PurgeState.SUCCEEDED
        line = (
            f"  {_MARK[product.state]} {product.product:<16} {product.state.value:<10}"
            f" {bar(count.purged, count.total, finished)} {figures[product.product]:>{width}}"
            f" {_percent(count.purged, count.total, finished):>4}"
        )
        if product.failure:
            line += f"  {product.failure}"
        lines.append(line + _waiting(product))
    return lines


def _waiting(product: ProductProgress) -> str:
    """Who a product outside this database waits on, and since when: its own worker (which
    may not be running), its deletion API, or an operator's confirmation."""
    if product.driver is ProductDriver.SQL or product.since is None:
        return ""
    since = f"since {product.since:%Y-%m-%d %H:%M:%S} UTC"
    if product.state is PurgeState.AWAITING_CONFIRMATION:
        return f"  waiting on people (confirm-purge) {since}"
    if product.state is not PurgeState.RUNNING:
        return ""
    if product.driver is ProductDriver.WORKER:
        return f"  by its worker on task queue {product_task_queue(product.product)} {since}"
    return f"  by its {product.driver.value} driver {since}"


def bar(done: int, total: int, finished: bool = False, width: int = BAR_WIDTH) -> str:
    """`[#########---------------]`: full only when finished (then even with nothing to purge);
    a purge that has removed every row but not yet confirmed it stays one mark short."""
    if finished and done >= total:
        filled = width
    else:
        filled = min(width - 1, done * width // total) if total else 0
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _percent(done: int, total: int, finished: bool) -> str:
    if finished and done >= total:
        return "100%"
    return f"{min(99, done * 100 // total)}%" if total else "0%"


def render_list(
    deletions: Sequence[ListedDeletion], *, now: datetime | None = None, empty: str = "no deletions"
) -> str:
    if not deletions:
        return empty
    now = now or datetime.now(UTC)
    width = max(len("ACCOUNT"), *(len(d.account_id) for d in deletions))
    rows = [
        f"{'ACCOUNT':<{width}} {'STAGE':<22} {'IN STAGE':>8} {'PENDING':>7}"
        f"  {'REQUESTED BY':<16} NOTE"
    ]
    for deletion in deletions:
        rows.append(
            f"{deletion.account_id:<{width}} {deletion.stage.value:<22}"
            f" {_age(now - deletion.stage_since):>8} {len(deletion.pending_tasks):>7}"
            f"  {deletion.requested_by:<16} {_note(deletion, now)}".rstrip()
        )
    return "\n".join(rows)


def _note(deletion: ListedDeletion, now: datetime) -> str:
    people = [t.product for t in deletion.pending_tasks if t.category is TaskCategory.MANUAL_PURGE]
    if people:
        return f"waiting on people: manual purge of {', '.join(p or '?' for p in people)}"
    if (starts := deletion.purge_starts_at) is not None:
        if deletion.overdue == "deadline_passed":
            return f"OVERDUE: cooling-off ended {_age(now - starts)} ago, purge not started"
        return f"cooling-off: purge starts in {_age(starts - now)}"
    if deletion.overdue == "deadline_passed" and deletion.deadline is not None:
        return f"OVERDUE: deadline passed {_age(now - deletion.deadline)} ago, run not expired"
    if deletion.overdue == "stalled":
        return f"OVERDUE: no stage change for {_age(now - deletion.stage_since)}"
    if deletion.deadline is not None:
        return f"expires in {_age(deletion.deadline - now)}"
    return ""


def _age(delta: timedelta) -> str:
    """`45s`, `12m`, `5h`, `3d`: rounded down, never negative."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"
