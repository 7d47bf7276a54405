"""The verification page as the user meets it: what it says in each stage, what it refuses,
and what it never shows (a legal hold's reason, the digits typed)."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
import pytest
from temporalio import activity
from temporalio.worker import Worker

from activities.verification import VerificationActivities
from contract.models import DeletionStatus, IssueCodeInput, IssuedCode, TaskCategory
from contract.stages import Stage
from service.api.page import render
from tests.support import (
    API_TOKEN,
    Stack,
    attach_every_prerequisite,
    code_hasher_for_tests,
    new_account,
    resolve_every_prerequisite,
    wait_for_stage,
)
from worker import activities_for
from workflows.account_deletion import AccountDeletion

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HOLD = "Litigation hold LH-2026-0042 placed by Legal"
GENERIC = "A product cannot delete your data yet; our team is handling it."


async def _page_path(api: httpx.AsyncClient, account_id: str) -> str:
    started = await api.post(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
    assert started.status_code == 202, started.text
    url: str = started.json()["verification_url"]
    return "/" + url.split("/", 3)[3]


@pytest.mark.parametrize("typed", ["12345", "1234567890", "١٢٣٤٥٦", "12345\n", "12 34 5"])
async def test_a_code_of_the_wrong_shape_is_refused_quietly_and_costs_no_attempt(
    api: httpx.AsyncClient, stack: Stack, caplog: pytest.LogCaptureFixture, typed: str
) -> None:
    account_id = await new_account(stack.pool)
    async with stack.worker():
        page = await _page_path(api, account_id)
        await stack.inbox.next_code(account_id)
        before = await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_VERIFICATION)
        # The code reaches the inbox a moment before the run records it as issued.
        async with asyncio.timeout(10):
            while before.verification is None:
                await asyncio.sleep(0.05)
                before = await stack.deletions.status(account_id)
        caplog.set_level(logging.DEBUG)
        answer = await api.post(page + "/code", data={"code": typed})
        assert answer.status_code == 303, answer.text
        shown = await api.get(answer.headers["location"])
        assert shown.status_code == 200
        assert "6 to 8 digits" in shown.text
        after = await stack.deletions.status(account_id)
        assert after.verification is not None
        assert after.verification.attempts_left == before.verification.attempts_left
        assert after.verification.last_outcome is None
        digits = typed.strip().replace(" ", "")
        logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        assert digits not in logged and digits not in shown.text
        await stack.deletions.cancel(account_id)


async def _page_once_the_code_is_recorded(api: httpx.AsyncClient, page: str) -> httpx.Response:
    """The page, once it no longer says the code is on its way: the inbox receives the code
    inside the activity that sends it, a moment before the run records it (the page refreshes
    itself meanwhile)."""
    async with asyncio.timeout(10):
        while "Sending your code" in (shown := await api.get(page)).text:
            await asyncio.sleep(0.1)
    return shown


async def test_the_page_says_the_code_is_on_its_way_until_it_was_sent(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Between the stage AWAITING_VERIFICATION and the issued code nothing was accepted yet."""
    account_id = await new_account(stack.pool)
    sent = asyncio.Event()
    real = VerificationActivities(stack.pool, stack.inbox, code_hasher_for_tests())

    @activity.defn(name="issue_verification_code")
    async def issue_when_let(request: IssueCodeInput) -> IssuedCode:
        await sent.wait()
        return await real.issue_verification_code(request)

    others = [
        a
        for a in activities_for(stack.pool, stack.inbox, code_hasher_for_tests())
        if getattr(a, "__name__", "") != "issue_verification_code"
    ]
    async with Worker(
        stack.client,
        task_queue=stack.task_queue,
        workflows=[AccountDeletion],
        activities=[*others, issue_when_let],
    ):
        page = await _page_path(api, account_id)
        await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_VERIFICATION)
        waiting = await api.get(page)
        assert waiting.status_code == 200
        assert "Sending your code" in waiting.text
        assert 'http-equiv="refresh"' in waiting.text
        assert "accepted" not in waiting.text.lower()
        assert "Cancel the deletion" in waiting.text
        sent.set()
        await stack.inbox.next_code(account_id)
        shown = await _page_once_the_code_is_recorded(api, page)
        assert "We sent a code to" in shown.text
        await stack.deletions.cancel(account_id)


HEADINGS = [
    "Cloud products",
    "Account balance funds",
    "Account groups",
    "Agencies",
    "Other partnerships",
    "Unfulfilled contracts",
    "Arrears",
]


async def test_the_blocked_page_groups_the_tasks_and_checks_again_on_request(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    account_id = await new_account(stack.pool)
    await attach_every_prerequisite(stack.pool, account_id)
    async with stack.worker():
        page = await _page_path(api, account_id)
        blocked = await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_TASKS)
        shown = await api.get(page)
        headings = re.findall(r"<h2>([^<]+)</h2>", shown.text)
        assert headings == HEADINGS
        categories = {task.category for task in blocked.pending_tasks}
        assert categories == TaskCategory.of_prerequisites()
        assert f'action="{page}/recheck"' in shown.text and "Check again" in shown.text

        # Nothing resolved: checked again, the same tasks are shown.
        again = await api.post(page + "/recheck", follow_redirects=True)
        assert again.status_code == 200
        assert "Check again" in again.text or "We are checking your account" in again.text

        await resolve_every_prerequisite(stack.pool, account_id)
        # Checks closer together than the policy's cooldown are refused, and the page says so.
        checked = await api.post(page + "/recheck", follow_redirects=True)
        assert checked.status_code == 200
        assert "Check again in a few seconds" in checked.text
        async with asyncio.timeout(30):
            while (await stack.deletions.status(account_id)).stage is Stage.AWAITING_TASKS:
                await asyncio.sleep(1)
                await api.post(page + "/recheck", follow_redirects=True)
        await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_VERIFICATION)
        await stack.inbox.next_code(account_id)
        assert "We sent a code to" in (await _page_once_the_code_is_recorded(api, page)).text

        forged = await api.post(page[:-2] + "AA/recheck")
        assert forged.status_code == 403
        await stack.deletions.cancel(account_id)


async def test_a_legal_hold_reason_is_for_operators_not_for_the_customer(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    account_id = await new_account(stack.pool)
    await stack.pool.execute(
        "insert into legal_holds (account_id, product, reason) values ($1, 'object_storage', $2)",
        account_id,
        HOLD,
    )
    async with stack.worker():
        page = await _page_path(api, account_id)
        code = await stack.inbox.next_code(account_id)
        await wait_for_stage(stack.deletions, account_id, Stage.AWAITING_VERIFICATION)
        await stack.deletions.verify(account_id, code)
        operator_view = await wait_for_stage(stack.deletions, account_id, Stage.PURGE_BLOCKED)
        # Operators: the client (CLI `status`) and the workflow's query keep the reason.
        assert any(HOLD in task.message for task in operator_view.pending_tasks)
        handle = await stack.deletions.handle(account_id)
        assert HOLD in (await handle.query(AccountDeletion.status)).model_dump_json()

        customer_page = await api.get(page)
        assert GENERIC in customer_page.text
        assert "LH-2026" not in customer_page.text and "Litigation" not in customer_page.text
        console = await api.get(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
        assert console.status_code == 200
        assert "LH-2026" not in console.text and "Litigation" not in console.text
        body = console.json()
        [task] = body["pending_tasks"]
        assert task["message"] == GENERIC and task["product"] == "object_storage"
        [failed] = [p for p in body["products"] if p["state"] == "failed"]
        assert failed["failure"] == GENERIC

        await stack.pool.execute(
            "update legal_holds set lifted_at = now() where account_id = $1", account_id
        )
        await stack.deletions.retry(account_id)
        await handle.result()


def _html(status: DeletionStatus) -> str:
    return bytes(render("l.m", status, None).body).decode()


def test_every_stage_renders_a_case_of_its_own_and_only_true_words() -> None:
    """The moments a live run rarely shows: accepted but not yet frozen, no code sent yet."""
    base = DeletionStatus(
        account_id="acct-x",
        workflow_id="account-deletion-acct-x",
        stage=Stage.DELETED,
        requested_by="console",
    )
    waiting = base.model_copy(update={"stage": Stage.AWAITING_VERIFICATION})
    assert "Your code was accepted" in _html(waiting.model_copy(update={"verified": True}))
    assert "Sending your code" in _html(waiting)
    for stage in Stage:
        body = _html(base.model_copy(update={"stage": stage}))
        assert "<main>" in body, stage
        if stage in (
            Stage.CHECKING_PREREQUISITES,
            Stage.AWAITING_TASKS,
            Stage.AWAITING_VERIFICATION,
        ):
            assert "accepted" not in body, stage
