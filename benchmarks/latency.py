"""Latency: from the verification accepted to the identifiers released, one deletion at a time,
against the bare workflow's same stretch (freeze, check, purges, release) on the same server.

Both clocks are this machine's: the client notes when the `verify_code` update answers
ACCEPTED; the saga's receipt carries the database's time of the release, the bare run's
result the wall-clock time its release activity ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmarks.bare import BareDeletion, BareRequest
from benchmarks.harness import (
    Report,
    bare_handle,
    bare_task_queue,
    bare_worker,
    bare_workflow_id,
    median,
    percentile,
    saga_handle,
    saga_worker,
)
from benchmarks.seed import seed_account
from benchmarks.stack import Stack
from contract.models import SubmitCodeInput, VerificationOutcome
from contract.stages import Stage
from starter.client import DeletionClient
from workflows.account_deletion import AccountDeletion

TARGET = 1.2


@dataclass(frozen=True)
class Size:
    deletions: int
    rows_per_product: int


SIZES = {
    "tiny": Size(deletions=2, rows_per_product=5),
    "full": Size(deletions=30, rows_per_product=100),
}


class CodeBox:
    """Codes as they are sent, for the driver to await per account."""

    def __init__(self) -> None:
        self._codes: dict[str, asyncio.Future[str]] = {}

    def expect(self, account_id: str) -> asyncio.Future[str]:
        future = asyncio.get_running_loop().create_future()
        self._codes[account_id] = future
        return future

    async def relay(self, account_id: str, code: str) -> None:
        future = self._codes.get(account_id)
        if future is not None and not future.done():
            future.set_result(code)


async def run(stack: Stack, size: Size) -> Report:
    saga_box, bare_box = CodeBox(), CodeBox()
    saga: list[float] = []
    bare: list[float] = []
    async with saga_worker(stack, saga_box.relay), bare_worker(stack, bare_box.relay):
        for _ in range(size.deletions):
            # Interleaved, so that both see the same state of the server.
            bare.append(await _bare_once(stack, bare_box))
            saga.append(await _saga_once(stack, saga_box, size))
    report = Report(
        "latency",
        columns=["workflow", "deletions", "p50 ms", "p95 ms", "max ms"],
        target=f"p50 ratio <= {TARGET}",
    )
    for name, values in (("bare", bare), ("saga", saga)):
        ms = [v * 1000 for v in values]
        report.rows.append([name, len(ms), median(ms), percentile(ms, 0.95), max(ms)])
    report.ratio = median(saga) / median(bare)
    report.met = report.ratio <= TARGET
    report.figures = {
        "deletions": size.deletions,
        "saga_p50_ms": round(median(saga) * 1000, 1),
        "saga_p95_ms": round(percentile(saga, 0.95) * 1000, 1),
        "bare_p50_ms": round(median(bare) * 1000, 1),
        "bare_p95_ms": round(percentile(bare, 0.95) * 1000, 1),
    }
    report.notes.append("verification accepted -> identifiers released, one deletion at a time")
    return report


async def _timed(
    accept: Callable[[], Awaitable[object]], released: Callable[[], Awaitable[datetime]]
) -> float:
    await accept()
    accepted_at = datetime.now(UTC)
    return (await released() - accepted_at).total_seconds()


async def _saga_once(stack: Stack, box: CodeBox, size: Size) -> float:
    account = await seed_account(stack.pool, rows_per_product=size.rows_per_product)
    deletions = DeletionClient(stack.client, stack.pool, stack.settings.temporal_task_queue)
    code = box.expect(account.account_id)
    await deletions.start(account.account_id, requested_by="benchmark")
    handle = saga_handle(stack, account.account_id)

    async def accept() -> None:
        check = await handle.execute_update(
            AccountDeletion.verify_code, SubmitCodeInput(code=await code)
        )
        if check.outcome is not VerificationOutcome.ACCEPTED:
            raise RuntimeError(f"the code was not accepted: {check.outcome}")

    async def released() -> datetime:
        receipt = await handle.result()
        if receipt.outcome is not Stage.DELETED or receipt.identifiers_released_at is None:
            raise RuntimeError(f"deletion ended {receipt.outcome}")
        return receipt.identifiers_released_at

    return await _timed(accept, released)


async def _bare_once(stack: Stack, box: CodeBox) -> float:
    account_id = f"{datetime.now(UTC).timestamp():.6f}"
    code = box.expect(account_id)
    await stack.client.start_workflow(
        BareDeletion.run,
        BareRequest(account_id=account_id),
        id=bare_workflow_id(account_id),
        task_queue=bare_task_queue(stack),
    )
    handle = bare_handle(stack, account_id)

    async def accept() -> None:
        check = await handle.execute_update(
            BareDeletion.verify_code, SubmitCodeInput(code=await code)
        )
        if check.outcome is not VerificationOutcome.ACCEPTED:
            raise RuntimeError(f"the code was not accepted: {check.outcome}")

    async def released() -> datetime:
        return (await handle.result()).released_at

    return await _timed(accept, released)
