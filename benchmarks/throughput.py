"""Throughput: K deletions drained by one worker, against the bare workflow of the same shape.

All K runs are started first with no worker polling; the clock runs from the worker's start
to the last result, so the figure is what one worker drains, not how fast clients start runs.
Codes are submitted (by signal) the moment they are sent, for both. The CPU each round took,
per deletion, is shown for this process (worker and clients) and for each server: where the
difference between the saga and the bare workflow goes.

Three benchmarks, one per product mix (`benchmarks/mixes.py`): `throughput` with the built-in
`sql` products alone; `throughput-worker` with the kit's example product `archive` beside them
(its own database, its worker in this process too); `throughput-http` with one `http` product
answering `200 completed` at once. Each against the bare shape with the same activities: after
the last round, one history of each is counted by task queue and the benchmark fails when the
counts differ (the bare shape no longer follows the saga's).
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
from benchmarks.mixes import Mix, mix_of
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
    """The built-in products alone."""
    return await run_mix(stack, size, "sql")


async def run_worker(stack: Stack, size: Size) -> Report:
    """The built-in products and the `worker` product `archive`."""
    return await run_mix(stack, size, "worker")


async def run_http(stack: Stack, size: Size) -> Report:
    """The built-in products and an `http` product answering `200 completed`."""
    return await run_mix(stack, size, "http")


async def run_mix(stack: Stack, size: Size, name: str) -> Report:
    async with mix_of(name, stack) as mix:
        return await _measure(mix, size)


async def _measure(mix: Mix, size: Size) -> Report:
    report = Report(
        "throughput" if mix.name == "sql" else f"throughput-{mix.name}",
        columns=["run", "deletions", "bare del/s", "saga del/s", "ratio"],
        target=f"ratio >= {TARGET}",
    )
    saga_rates: list[float] = []
    bare_rates: list[float] = []
    cpu: dict[str, list[dict[str, float]]] = {"bare": [], "saga": []}
    for index in range(size.runs):
        bare, bare_cpu, bare_id = await _bare_round(mix, size.deletions)
        saga, saga_cpu, saga_id = await _saga_round(mix, size)
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
    activities = await _same_activities(mix, saga_id, bare_id)
    report.figures = {
        "deletions": size.deletions,
        "rows_per_account": size.rows_per_product * 6,
        "runs": size.runs,
        "saga_deletions_per_s": round(median(saga_rates), 2),
        "bare_deletions_per_s": round(median(bare_rates), 2),
        "cpu_s_per_deletion": cpu_per_deletion,
        "mix": mix.name,
        "products_beyond_registry": [f"{p.name} ({p.driver})" for p in mix.bare_products],
        "activities_by_queue": activities,
    }
    if mix.seeded_rows:
        report.figures["product_rows_per_account"] = max(mix.seeded_rows.values())
    for workflow, seconds in cpu_per_deletion.items():
        shares = ", ".join(f"{process} {value * 1000:.0f} ms" for process, value in seconds.items())
        report.notes.append(f"CPU per {workflow} deletion: {shares}")
    report.notes.append(
        f"medians of {size.runs} run(s); each account has {size.rows_per_product} residual rows"
        " in each of 6 products"
    )
    if mix.bare_products:
        beyond = ", ".join(report.figures["products_beyond_registry"])
        report.notes.append(
            f"with {beyond}; activities a deletion schedules, saga and bare alike: {activities}"
        )
    return report


async def _same_activities(mix: Mix, account_id: str, bare_id: str) -> dict[str, int]:
    """The activities one saga run and one bare run scheduled, by queue; they must be equal."""
    saga = mix.activities_by_queue(await saga_handle(mix.stack, account_id).fetch_history())
    bare = mix.activities_by_queue(await bare_handle(mix.stack, bare_id).fetch_history())
    if saga != bare:
        raise RuntimeError(
            f"the bare shape of the {mix.name} mix no longer schedules the saga's activities:"
            f" saga {saga}, bare {bare}"
        )
    return saga


async def _saga_round(mix: Mix, size: Size) -> tuple[float, dict[str, float], str]:
    """Deletions per second, the CPU seconds of each process while the worker drained, and
    one of the accounts."""
    stack = mix.stack
    accounts = await seed_accounts(
        stack.pool, size.deletions, rows_per_product=size.rows_per_product
    )
    await mix.seed([a.account_id for a in accounts], size.rows_per_product)
    deletions = DeletionClient(stack.client, stack.pool, stack.settings.temporal_task_queue)
    gate = asyncio.Semaphore(20)

    async def start(account_id: str) -> None:
        async with gate:
            await deletions.start(account_id, requested_by="benchmark")

    await asyncio.gather(*(start(a.account_id) for a in accounts))

    relay = signalling(stack, workflow_id_for)
    started = time.perf_counter()
    with CpuMeter(stack.servers) as cpu:
        async with saga_worker(stack, relay), mix.saga_workers():
            receipts = await asyncio.gather(
                *(saga_handle(stack, a.account_id).result() for a in accounts)
            )
    elapsed = time.perf_counter() - started
    failed = [r.account_id for r in receipts if r.outcome is not Stage.DELETED]
    if failed:
        raise RuntimeError(f"deletions did not finish as DELETED: {failed}")
    mix.check(receipts)
    return size.deletions / elapsed, cpu.seconds, accounts[0].account_id


async def _bare_round(mix: Mix, count: int) -> tuple[float, dict[str, float], str]:
    stack = mix.stack
    ids = [f"{time.time_ns()}-{n}" for n in range(count)]
    for account_id in ids:
        await stack.client.start_workflow(
            BareDeletion.run,
            BareRequest(account_id=account_id, products=mix.bare_products),
            id=bare_workflow_id(account_id),
            task_queue=bare_task_queue(stack),
        )

    relay = signalling(stack, bare_workflow_id)
    started = time.perf_counter()
    with CpuMeter(stack.servers) as cpu:
        async with bare_worker(stack, relay), mix.bare_workers():
            await asyncio.gather(*(bare_handle(stack, a).result() for a in ids))
    return count / (time.perf_counter() - started), cpu.seconds, ids[0]
