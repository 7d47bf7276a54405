"""The operator CLI (`account-deletion ...`) on real runs: the console script runs as a process of
its own against the test's Temporal server and database, as an operator runs it.

`list --stage`, `status`, refusals and their exit codes; `status --watch` drawing purge progress
bars until the run is DELETED; `list --overdue`; and the `DeletionStage` search attribute query
operators save in the Temporal UI.
"""

from __future__ import annotations

import asyncio
import re
import signal
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecution

from contract.models import DeletionPolicy
from contract.names import DELETION_STAGE, workflow_id_for
from contract.stages import Stage
from demo import DemoSizes, seed_demo
from registry.products import PRODUCTS
from service.embedded import installed_binary
from starter.client import DeletionClient
from tests.support import (
    Inbox,
    attach_every_prerequisite,
    cli,
    new_account,
    object_locked,
    running_worker,
    seed_residual_rows,
    start_and_receive_code,
    wait_for_stage,
)


def listed(output: str) -> dict[str, str]:
    """`list` output as {account_id: its line}."""
    lines = output.splitlines()
    assert lines and lines[0].startswith("ACCOUNT"), output
    return {line.split()[0]: line for line in lines[1:]}


@pytest.mark.slow
async def test_list_by_stage_and_status_on_real_runs_with_clear_refusals(
    client: Client, pool: asyncpg.Pool, task_queue: str, cli_env: dict[str, str]
) -> None:
    deletions = DeletionClient(client, pool, task_queue)
    inbox = Inbox()
    async with running_worker(client, pool, task_queue, inbox):
        verifying = await new_account(pool)
        await start_and_receive_code(deletions, inbox, verifying)
        blocked = await new_account(pool)
        await attach_every_prerequisite(pool, blocked)
        await deletions.start(blocked, requested_by="ops-jane")
        await wait_for_stage(deletions, blocked, Stage.AWAITING_TASKS)

        (
            by_stage,
            lowercase,
            everything,
            status_verifying,
            status_blocked,
            unknown_stage,
            unknown_account,
            refused,
            bad_limit,
        ) = await asyncio.gather(
            cli(cli_env, "list", "--stage", "AWAITING_VERIFICATION"),
            cli(cli_env, "list", "--stage", "awaiting_tasks"),
            cli(cli_env, "list"),
            cli(cli_env, "status", verifying),
            cli(cli_env, "status", blocked),
            cli(cli_env, "list", "--stage", "HALF_DELETED"),
            cli(cli_env, "status", "acct-doesnotexist"),
            cli(cli_env, "recheck", verifying),
            cli(cli_env, "list", "--limit", "0"),
        )

        code, out, err = by_stage
        assert code == 0, err
        assert set(listed(out)) == {verifying}
        assert "AWAITING_VERIFICATION" in listed(out)[verifying]
        assert "expires in 23h" in listed(out)[verifying]  # the 24-hour verification deadline
        code, out, err = lowercase
        assert code == 0, err
        assert set(listed(out)) == {blocked}
        assert re.search(rf"{blocked}\s+AWAITING_TASKS\s+\d+s\s+8\s+ops-jane", out), out
        code, out, err = everything
        assert code == 0, err
        assert set(listed(out)) == {verifying, blocked}

        code, out, err = status_verifying
        assert code == 0, err
        assert re.search(r"^stage\s+AWAITING_VERIFICATION$", out, re.M), out
        assert re.search(r"^code\s+sent by email to \S+\*\*\*@example\.com", out, re.M), out
        assert re.search(r"^identifiers\s+held$", out, re.M), out
        code, out, err = status_blocked
        assert code == 0, err
        assert re.search(r"^stage\s+AWAITING_TASKS$", out, re.M), out
        assert "pending tasks (8):" in out
        for category in ("cloud_product", "balance_funds", "account_group", "arrears"):
            assert f"[{category}]" in out
        assert "to resolve:" in out

        code, out, err = unknown_stage
        assert code == 2 and out == ""
        assert "unknown stage 'HALF_DELETED'" in err and "PURGE_BLOCKED" in err, err
        code, out, err = unknown_account
        assert code == 3 and out == ""
        assert "no account acct-doesnotexist" in err
        code, out, err = refused
        assert code == 1 and out == ""
        assert "cannot check the pending tasks again in stage AWAITING_VERIFICATION" in err
        code, out, err = bad_limit
        assert code == 2 and "--limit" in err

        code, out, err = await cli(cli_env, "list", "--stage", "DELETED")
        assert (code, out.strip()) == (0, "no deletions in DELETED"), err

        # Ctrl-C stops watching a run that is not over; the deletion goes on.
        process = await asyncio.create_subprocess_exec(
            str(installed_binary("account-deletion")),
            *("status", verifying, "--watch", "--interval", "0.2"),
            env=cli_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        watch = Output(process)
        await watch.wait_for(r"^stage\s+AWAITING_VERIFICATION$")
        process.send_signal(signal.SIGINT)
        assert await watch.finish(timeout=20) == 130
        assert (await deletions.status(verifying)).stage is Stage.AWAITING_VERIFICATION

        for account_id in (verifying, blocked):
            await deletions.cancel(account_id, "test over")
            await wait_for_stage(deletions, account_id, Stage.CANCELLED)


class Output:
    """A process's stdout, collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.text = ""
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.text += line.decode()
            self._changed.set()

    async def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        regex = re.compile(pattern, re.M)
        try:
            async with asyncio.timeout(timeout):
                while not (match := regex.search(self.text)):
                    if self.process.returncode is not None:
                        raise AssertionError(f"exited {self.process.returncode}:\n{self.text}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} within {timeout}s in:\n{self.text}") from None
        return match

    async def finish(self, timeout: float = 60) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reader
        return code


@pytest.mark.slow
async def test_watch_draws_purge_progress_bars_and_ends_when_the_run_is_deleted(
    client: Client, pool: asyncpg.Pool, task_queue: str, cli_env: dict[str, str]
) -> None:
    account_id = await new_account(pool)
    seeded = await seed_residual_rows(pool, account_id, objects=3_000, records=400)
    objects = seeded["storage_objects"]
    deletions = DeletionClient(client, pool, task_queue)
    inbox = Inbox()
    async with running_worker(client, pool, task_queue, inbox, batch_size=100):
        code = await start_and_receive_code(deletions, inbox, account_id)
        process = await asyncio.create_subprocess_exec(
            str(installed_binary("account-deletion")),
            *("status", account_id, "--watch", "--interval", "0.2"),
            env=cli_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        watch = Output(process)
        try:
            await watch.wait_for(r"^stage\s+AWAITING_VERIFICATION$")
            async with object_locked(pool, account_id, position=1_234):
                await deletions.submit_code(account_id, code)
                # The purge is held at the locked object: the bar shows the rows purged so far
                # (12 batches of 100) of all there are (the objects and the bucket).
                total = objects + 1
                await watch.wait_for(
                    rf"^  … object_storage\s+running\s+\[#{{9}}-{{15}}\]\s+1,200/{total:,} rows\s+"
                    rf"{1_200 * 100 // total}%$"
                )
                await watch.wait_for(r"^  ✓ dns\s+succeeded\s+\[#{24}\]\s+401/401 rows\s+100%$")
                await watch.wait_for(
                    rf"^products: [1-8] of {len(PRODUCTS)} purged, [\d,]+ of [\d,]+ rows \(\d+%\)$"
                )
            assert await watch.finish() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    out = watch.text
    assert "\x1b[" not in out, "not a terminal: frames are printed, not redrawn"
    assert "stage        PURGING" in out
    final = out.split("the run ended ---\n", 1)[1]
    assert re.search(r"^stage\s+DELETED$", final, re.M), out
    assert re.search(r"^identifiers\s+released$", final, re.M), final
    assert re.search(rf"^  ✓ object_storage\s+succeeded\s+{objects + 1:,} rows$", final, re.M)


@pytest.mark.slow
async def test_list_overdue_shows_a_deletion_past_its_deadline_and_not_a_fresh_one(
    client: Client, pool: asyncpg.Pool, task_queue: str, cli_env: dict[str, str]
) -> None:
    deletions = DeletionClient(client, pool, task_queue)
    inbox = Inbox()
    fresh = await new_account(pool)
    late = await new_account(pool)
    async with running_worker(client, pool, task_queue, inbox):
        await start_and_receive_code(deletions, inbox, fresh)
        short = DeletionPolicy(verification_deadline=timedelta(seconds=4))
        await start_and_receive_code(deletions, inbox, late, policy=short)
    # No worker now: the late deletion's deadline passes without the run expiring.
    deadline = await pool.fetchval("select deadline from deletions where account_id = $1", late)
    assert deadline is not None, "the deadline is recorded with the stage"
    assert await pool.fetchval("select deadline from deletions where account_id = $1", fresh) > (
        datetime.now(UTC) + timedelta(hours=23)
    )
    # And one blocked on a product for two days (stages without a deadline: by --overdue-after).
    stuck = await new_account(pool)
    await pool.execute(
        """
        insert into deletions (workflow_id, account_id, run_id, stage, requested_by, updated_at)
        values ($1, $2, 'run-1', 'PURGE_BLOCKED', 'console', now() - interval '2 days')
        """,
        workflow_id_for(stuck),
        stuck,
    )
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)

    overdue, narrower, everything, bad = await asyncio.gather(
        cli(cli_env, "list", "--overdue"),
        cli(cli_env, "list", "--overdue", "--overdue-after", "3d"),
        cli(cli_env, "list"),
        cli(cli_env, "list", "--overdue", "--overdue-after", "soon"),
    )
    code, out, err = overdue
    assert code == 0, err
    rows = listed(out)
    assert set(rows) == {late, stuck}
    assert "OVERDUE: deadline passed" in rows[late]
    assert "OVERDUE: no stage change for 2d" in rows[stuck]
    code, out, err = narrower
    assert code == 0, err
    assert set(listed(out)) == {late}
    code, out, err = everything
    assert code == 0, err
    rows = listed(out)
    assert set(rows) == {fresh, late, stuck}
    assert "OVERDUE" not in rows[fresh] and "expires in 23h" in rows[fresh]
    code, out, err = bad
    assert code == 2 and "not a duration: 'soon'" in err

    for account_id in (fresh, late):
        await client.get_workflow_handle(workflow_id_for(account_id)).terminate("test over")


SMALL = DemoSizes(
    storage_objects=200, dns_records=40, cdn_access_logs=30, compute_snapshots=10, db_backups=5
)


async def test_the_deletion_stage_query_finds_the_legal_hold_demo_run(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    demo = await seed_demo(pool, sizes=SMALL)
    account_id = demo["legal_hold"]
    deletions = DeletionClient(client, pool, task_queue)
    inbox = Inbox()
    async with running_worker(client, pool, task_queue, inbox):
        await deletions.start(account_id, requested_by="ops-jane")
        code = await inbox.next_code(account_id)
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        await deletions.submit_code(account_id, code)
        blocked = await wait_for_stage(deletions, account_id, Stage.PURGE_BLOCKED)
        assert [task.product for task in blocked.pending_tasks] == ["object_storage"]

        query = f'DeletionStage="PURGE_BLOCKED" AND TaskQueue="{task_queue}"'
        found: list[WorkflowExecution] = []
        async with asyncio.timeout(10):  # visibility is eventually consistent
            while len(found) != 1:
                found = [execution async for execution in client.list_workflows(query)]
                if len(found) != 1:
                    await asyncio.sleep(0.2)
        [execution] = found
        assert execution.id == workflow_id_for(account_id)
        assert execution.typed_search_attributes.get(DELETION_STAGE) == "PURGE_BLOCKED"

        await pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await deletions.retry(account_id)
        receipt = await (await deletions.handle(account_id)).result()
    assert receipt.outcome is Stage.DELETED
    assert "object_storage" in {product.product for product in receipt.products}
