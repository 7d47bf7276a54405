"""How the CLI shows deletions to operators: plain text that reads well in a terminal."""

from __future__ import annotations

from workflows.models import DeletionStatus, PurgeState

_MARK = {
    PurgeState.PENDING: "·",
    PurgeState.RUNNING: "…",
    PurgeState.SUCCEEDED: "✓",
    PurgeState.FAILED: "✗",
}


def render_status(status: DeletionStatus) -> str:
    lines = [
        f"account      {status.account_id}",
        f"workflow     {status.workflow_id}",
        f"stage        {status.stage.value}",
        f"requested by {status.requested_by}",
    ]
    if status.deadline:
        lines.append(f"deadline     {status.deadline:%Y-%m-%d %H:%M:%S} UTC")
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
    if status.products:
        lines.append("products:")
        for product in status.products:
            detail = f"{product.rows} rows" if product.state is PurgeState.SUCCEEDED else ""
            if product.failure:
                detail = product.failure
            lines.append(
                f"  {_MARK[product.state]} {product.product:<16} {product.state.value:<10} {detail}"
            )
    return "\n".join(lines)


def render_list(statuses: list[DeletionStatus]) -> str:
    if not statuses:
        return "no deletions"
    rows = [f"{'ACCOUNT':<24} {'STAGE':<24} {'PENDING':>7}  REQUESTED BY"]
    for status in statuses:
        rows.append(
            f"{status.account_id:<24} {status.stage.value:<24} "
            f"{len(status.pending_tasks):>7}  {status.requested_by}"
        )
    return "\n".join(rows)
