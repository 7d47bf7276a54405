"""Throughput: K deletions drained by one worker, against the bare workflow of the same shape.

All K runs are started first with no worker polling; the clock runs from the worker's start
to the last result, so the figure is what one worker drains, not how fast clients start runs.
Codes are submitted (by signal) the moment they are sent, for both. The CPU each round took,
per deletion, is shown for this process (worker and clients) and for each server: where the
difference between the saga and the bare workflow goes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from benchmarks.bare import BareDeletion, BareRequest
from benchmarks.harness import (
    CpuMeter,
    Report,
    bare_handle,
    bare_task_queue,
    bare_worker,
    bare_workflow_id,
    median,
    saga_handle,
    saga_worker,
    signalling,
)
from benchmarks.seed import seed_accounts
from benchmarks.stack import Stack
from contract.names import workflow_id_for
from contract.stages import Stage
from starter.client import DeletionClient

TARGET = 0.9


@dataclass(frozen=True)
class Size:
    deletions: int
    rows_per_product: int
    runs: int


SIZES = {"tiny": Size(deletions=3, rows_per_product=5, runs=1), "full": Size(200, 100, 3)}


async def run(stack: Stack, size: Size) -> Report:
    report = Report(
        "throughput",
        columns=["run", "deletions", "bare del/s", "saga del/s", "ratio"],
        target=f"ratio >= {TARGET}",
    )
    saga_rates: list[float] = []
    bare_rates: list[float] = []
    cpu: dict[str, list[dict[str, float]]] = {"bare": [], "saga": []}
    for index in range(size.runs):
        bare, bare_cpu = await _bare_round(stack, size.deletions)
        saga, saga_cpu = await _saga_round(stack, size)
        bare_rates.append(bare)
        saga_rates.append(saga)
        cpu["bare"].append(bare_cpu)
        cpu["saga"].append(saga_cpu)
        report.rows.append([index + 1, size.deletions, bare, saga, saga / bare])
    report.ratio = median(saga_rates) / median(bare_rates)
    cpu_per_deletion = {
        workflow: {
            process: round(median([r[process] for r in rounds]) / size.deletions, 4)
            for process in rounds[0]
        }
        for workflow, rounds in cpu.items()
    }
    report.met = report.ratio >= TARGET
    report.figures = {
        "deletions": size.deletions,
        "rows_per_account": size.rows_per_product * 6,
        "runs": size.runs,
        "saga_deletions_per_s": round(median(saga_rates), 2),
        "bare_deletions_per_s": round(median(bare_rates), 2),
        "cpu_s_per_deletion": cpu_per_deletion,
    }
    for workflow, seconds in cpu_per_deletion.items():
        shares = ", ".join(f"{process} {value * 1000:.0f} ms" for process, value in seconds.items())
        report.notes.append(f"CPU per {workflow} deletion: {shares}")
    report.notes.append(
        f"medians of {size.runs} run(s); each account has {size.rows_per_product} residual rows"
        " in each of 6 products"
    )
    return report


async def _saga_round(stack: Stack, size: Size) -> tuple[float, dict[str, float]]:
    """Deletions per second, and the CPU seconds of each process while the worker drained."""
    accounts = await seed_accounts(
        stack.pool, size.deletions, rows_per_product=size.rows_per_product
    )
    deletions = DeletionClient(stack.client, stack.pool, stack.settings.temporal_task_queue)
    gate = asyncio.Semaphore(20)

    async def start(account_id: str) -> None:
        async with gate:
            await deletions.start(account_id, requested_by="benchmark")

    await asyncio.gather(*(start(a.account_id) for a in accounts))

    relay = signalling(stack, workflow_id_for)
    started = time.perf_counter()
    with CpuMeter(stack.servers) as cpu:
        async with saga_worker(stack, relay):
            receipts = await asyncio.gather(
                *(saga_handle(stack, a.account_id).result() for a in accounts)
            )
    elapsed = time.perf_counter() - started
    failed = [r.account_id for r in receipts if r.outcome is not Stage.DELETED]
    if failed:
        raise RuntimeError(f"deletions did not finish as DELETED: {failed}")
    return size.deletions / elapsed, cpu.seconds


async def _bare_round(stack: Stack, count: int) -> tuple[float, dict[str, float]]:
    ids = [f"{time.time_ns()}-{n}" for n in range(count)]
    for account_id in ids:
        await stack.client.start_workflow(
            BareDeletion.run,
            BareRequest(account_id=account_id),
            id=bare_workflow_id(account_id),
            task_queue=bare_task_queue(stack),
        )

    relay = signalling(stack, bare_workflow_id)
    started = time.perf_counter()
    with CpuMeter(stack.servers) as cpu:
        async with bare_worker(stack, relay):
            await asyncio.gather(*(bare_handle(stack, a).result() for a in ids))
    return count / (time.perf_counter() - started), cpu.seconds
