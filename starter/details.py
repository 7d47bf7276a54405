"""What an operator sees first of a deletion run in the Temporal UI (never PII)."""

from __future__ import annotations

from contract.models import DeletionRequest


def static_details(request: DeletionRequest) -> str:
    """The run's static details: the flow and this run's limits."""
    policy = request.policy
    return "\n".join(
        [
            f"Account **{request.account_id}**, requested by **{request.requested_by}**.",
            "",
            "Flow: check prerequisites → verify a one-time code → freeze → purge every product"
            " (point of no return) → release identifiers → finalize.",
            "",
            f"- pending tasks expire after {policy.tasks_deadline}, checked every"
            f" {policy.recheck_interval}",
            f"- confirmation expires after {policy.verification_deadline}; codes of"
            f" {policy.code_digits} digits valid {policy.code_ttl}, {policy.code_attempts}"
            " attempts each",
            f"- purges retried {policy.purge_attempts} times, heartbeat timeout"
            f" {policy.purge_heartbeat_timeout}",
            f"- cooling-off {policy.cooling_off}: frozen and restorable before purging"
            if policy.cooling_off
            else "- no cooling-off: purging starts once the account is frozen",
            "",
            "Stuck? `DeletionStage` shows where; `PURGE_BLOCKED` waits for `retry_failed_purges`.",
        ]
    )
