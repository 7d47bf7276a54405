"""`GET /v1/deletions` and `account-deletion list`: most recently changed first, in pages whose
cursor keeps one listing a snapshot, so that no deletion is skipped or repeated while deletions
change stage between pages; filters by stage and overdue; 401 and 422 problems."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from temporalio.testing import ActivityEnvironment

from activities.account import AccountActivities
from activities.purge import PurgeActivities
from contract.models import ProgressRecord
from contract.names import workflow_id_for
from contract.stages import Stage
from registry.catalog import Catalog
from tests.support import API_TOKEN, cli, new_account

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class Recorder:
    """Stage changes written as the workflow writes them: `record_progress`, on a real database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        catalog = Catalog()
        self._activities = AccountActivities(pool, PurgeActivities(pool, catalog), catalog)
        self._env = ActivityEnvironment()

    async def move(
        self, account_id: str, stage: Stage, *, deadline: datetime | None = None
    ) -> None:
        record = ProgressRecord(
            account_id=account_id,
            workflow_id=workflow_id_for(account_id),
            run_id="run-1",
            requested_by="console",
            stage=stage,
            pending_tasks=[],
            products=[],
            closed=stage.is_final,
            deadline=deadline,
        )
        await self._env.run(self._activities.record_progress, record)


async def page_through(
    api: httpx.AsyncClient, params: dict[str, Any], between: Any = None
) -> list[dict[str, Any]]:
    """Every item of one listing, page after page; `between()` runs after each page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await api.get("/v1/deletions", params=query, headers=AUTH)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        if between is not None:
            await between()


async def test_pages_skip_and_repeat_nothing_while_deletions_change_stage(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    recorder = Recorder(pool)
    accounts = [await new_account(pool) for _ in range(12)]
    for account_id in accounts:
        await recorder.move(account_id, Stage.CHECKING_PREREQUISITES)
    newest_first = accounts[::-1]
    late = await new_account(pool)
    moves: list[tuple[str, Stage]] = [
        # Not listed yet (page 3): moves to the front, where a plain keyset would skip it.
        (accounts[2], Stage.AWAITING_VERIFICATION),
        # Listed already (page 1): moves to the front, where it would come again.
        (accounts[9], Stage.AWAITING_VERIFICATION),
        # Started after the first page: the next listing has it.
        (late, Stage.CHECKING_PREREQUISITES),
    ]

    async def change() -> None:
        for account_id, stage in moves[:2]:
            await recorder.move(account_id, stage)
        del moves[:2]

    items = await page_through(api, {"limit": 5}, between=change)
    assert [item["account_id"] for item in items] == newest_first
    shown = {item["account_id"]: item["stage"] for item in items}
    assert shown[accounts[2]] == "AWAITING_VERIFICATION", "items show the deletion as it is now"

    again = await page_through(api, {"limit": 500})
    assert [item["account_id"] for item in again][:3] == [late, accounts[9], accounts[2]]

    # Filtered by stage as of the first page: a deletion that leaves the stage meanwhile is
    # still in the listing, one that enters it is not (it is in the next listing).
    async def leave_and_enter() -> None:
        await recorder.move(accounts[0], Stage.AWAITING_VERIFICATION)
        await recorder.move(accounts[9], Stage.CHECKING_PREREQUISITES)

    filtered = await page_through(
        api, {"stage": "CHECKING_PREREQUISITES", "limit": 3}, between=leave_and_enter
    )
    expected = [a for a in [late, *newest_first] if a not in (accounts[9], accounts[2])]
    assert [item["account_id"] for item in filtered] == expected


async def test_pages_stay_exact_under_concurrent_stage_changes(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    recorder = Recorder(pool)
    accounts = [await new_account(pool) for _ in range(30)]
    for account_id in accounts:
        await recorder.move(account_id, Stage.CHECKING_PREREQUISITES)
    stop = asyncio.Event()
    rng = random.Random(14)
    stages = [Stage.AWAITING_TASKS, Stage.CHECKING_PREREQUISITES, Stage.AWAITING_VERIFICATION]

    async def churn() -> int:
        moved = 0
        while not stop.is_set():
            await recorder.move(rng.choice(accounts), rng.choice(stages))
            moved += 1
            await asyncio.sleep(0)
        return moved

    churning = [asyncio.create_task(churn()) for _ in range(3)]
    try:
        items = await page_through(api, {"limit": 4}, between=lambda: asyncio.sleep(0.02))
    finally:
        stop.set()
        moved = sum(await asyncio.gather(*churning))
    listed = [item["account_id"] for item in items]
    assert moved > 10, "the deletions changed while the pages were read"
    assert sorted(listed) == sorted(accounts), "each deletion exactly once"


async def test_overdue_filter_and_the_cli_use_the_same_query(
    api: httpx.AsyncClient, pool: asyncpg.Pool, cli_env: dict[str, str]
) -> None:
    recorder = Recorder(pool)
    passed, waiting, stalled, fresh, closed = [await new_account(pool) for _ in range(5)]
    now = datetime.now(UTC)
    await recorder.move(passed, Stage.AWAITING_TASKS, deadline=now - timedelta(minutes=1))
    await recorder.move(waiting, Stage.AWAITING_TASKS, deadline=now + timedelta(days=1))
    await recorder.move(stalled, Stage.PURGE_BLOCKED)
    await recorder.move(fresh, Stage.PURGE_BLOCKED)
    await recorder.move(closed, Stage.CANCELLED)
    await pool.execute(
        "update deletions set stage_changed_at = now() - interval '2 days'"
        " where workflow_id = any($1::text[])",
        [workflow_id_for(stalled), workflow_id_for(closed)],
    )
    overdue = await page_through(api, {"overdue": "true"})
    assert {(i["account_id"], i["overdue"]) for i in overdue} == {
        (passed, "deadline_passed"),
        (stalled, "stalled"),
    }
    blocked = await page_through(api, {"stage": "PURGE_BLOCKED"})
    assert [i["account_id"] for i in blocked] == [fresh, stalled]

    code, out, err = await cli(cli_env, "list", "--limit", "2", "--json")
    assert code == 0, err
    page = json.loads(out)
    assert [i["account_id"] for i in page["items"]] == [closed, fresh]
    code, out, err = await cli(
        cli_env, "list", "--limit", "2", "--json", "--cursor", page["next_cursor"]
    )
    assert [i["account_id"] for i in json.loads(out)["items"]] == [stalled, waiting]
    code, out, err = await cli(cli_env, "status", closed, "--json")
    assert code == 0, err
    assert json.loads(out)["stage"] == "CANCELLED"
    code, out, _ = await cli(cli_env, "--version")
    assert code == 0 and out.startswith("account-deletion ")


async def test_without_a_token_401_and_bad_parameters_422(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    missing = await api.get("/v1/deletions")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    for params in (
        {"stage": "NOPE"},
        {"limit": "0"},
        {"limit": "501"},
        {"overdue": "maybe"},
        {"cursor": "not a cursor!"},
    ):
        answer = await api.get("/v1/deletions", params=params, headers=AUTH)
        assert answer.status_code == 422, params
        assert answer.json()["error"] == "invalid_request", params
        assert "NOPE" not in answer.text and "maybe" not in answer.text
    recorder = Recorder(pool)
    for _ in range(3):
        await recorder.move(await new_account(pool), Stage.CHECKING_PREREQUISITES)
    first = (await api.get("/v1/deletions", params={"limit": 1}, headers=AUTH)).json()
    for params in (
        {"cursor": "bm90LWpzb24"},  # base64 of something that is not a cursor
        {"cursor": first["next_cursor"], "stage": "DELETED"},  # another listing's filters
    ):
        answer = await api.get("/v1/deletions", params={"limit": 1, **params}, headers=AUTH)
        assert answer.status_code == 422, params
        assert answer.json()["error"] == "invalid_cursor"
