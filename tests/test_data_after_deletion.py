"""What a finished deletion leaves in the database: none of the account's product rows (not even
rows written late, while the run waited), and its email and phone nowhere in clear.

End to end, on a real Temporal dev server and a real PostgreSQL.
"""

from __future__ import annotations

from contract.models import PurgeState
from contract.stages import Stage
from tests.support import Stack, new_account, start_and_receive_code, wait_for_stage


async def test_rows_written_while_the_purge_was_blocked_are_purged_before_the_release(
    stack: Stack,
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)  # one (terminated) compute instance among its rows
    await pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'dns', 'Hold H-14')",
        account_id,
    )
    async with stack.worker():
        code = await start_and_receive_code(deletions, inbox, account_id)
        await deletions.submit_code(account_id, code)
        status = await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        assert {p.product: p.state for p in status.products}["compute"] is PurgeState.SUCCEEDED
        # Compute writes a row for the account late (months may pass in PURGE_BLOCKED).
        await pool.execute(
            "insert into compute_instances values ($1, $2, 'eu-west-1', 'late', 'e2-small',"
            " 'terminated')",
            f"i-late-{account_id}",
            account_id,
        )
        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        receipt = await (await deletions.handle(account_id)).result()

    assert receipt.outcome is Stage.DELETED
    assert (
        await pool.fetchval(
            "select count(*) from compute_instances where account_id = $1", account_id
        )
        == 0
    ), "a row written after the product's purge survived the deletion"
    compute = {p.product: p for p in receipt.products}["compute"]
    assert {t.table: t.rows for t in compute.tables}["compute_instances"] == 2
    assert compute.rows == 2 and compute.verified_clean
    assert (
        await pool.fetchval(
            "select rows from purge_progress where account_id = $1"
            " and product = 'compute' and table_name = 'compute_instances'",
            account_id,
        )
        == 2
    )
    late = await pool.fetch(
        "select detail->>'product' as product, (detail->>'rows')::int as rows"
        " from audit_events where account_id = $1 and kind = 'late_rows_purged'",
        account_id,
    )
    assert [(r["product"], r["rows"]) for r in late] == [("compute", 1)]
    recorded = await pool.fetchval(
        "select receipt from deletions where account_id = $1", account_id
    )
    assert recorded == receipt.model_dump(mode="json")
    # Released only after the late rows were gone.
    purged_at = await pool.fetchval(
        "select occurred_at from audit_events where account_id = $1 and kind = 'late_rows_purged'",
        account_id,
    )
    released_at = await pool.fetchval(
        "select occurred_at from audit_events"
        " where account_id = $1 and kind = 'identifiers_released'",
        account_id,
    )
    assert released_at >= purged_at
