"""Waiting runs: N deletions waiting for their codes, held by one `python worker.py` process.

Measures the time to start them all (until every run has sent its code and waits) and the
worker's resident memory: idle before (the baseline), the peak, and steady once all wait.
A waiting run costs the worker only a cache slot (WORKER_MAX_CACHED_WORKFLOWS); runs beyond
the cache are evicted and replayed from history when a code arrives.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.harness import Report
from benchmarks.seed import seed_accounts
from benchmarks.sink import message_sink
from benchmarks.stack import Stack
from contract.names import workflow_id_for
from starter.client import DeletionClient

TARGET_MIB = 1024
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Size:
    deletions: int


SIZES = {"tiny": Size(deletions=20), "full": Size(deletions=10_000)}


class WorkerMemory:
    """Samples a process's RSS every half second; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> int:
        rss = int(self._process.memory_info().rss)
        self.peak = max(self.peak, rss)
        return rss

    async def _sample(self) -> None:
        while True:
            self.rss()
            await asyncio.sleep(0.5)

    def __enter__(self) -> WorkerMemory:
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _mib(value: int) -> float:
    return value / 1024 / 1024


async def run(stack: Stack, size: Size) -> Report:
    with message_sink() as notifier_env:
        return await _measure(stack, size, notifier_env)


async def _measure(stack: Stack, size: Size, notifier_env: dict[str, str]) -> Report:
    accounts = [
        a.account_id
        for a in await seed_accounts(stack.pool, size.deletions, rows_per_product=0, concurrency=16)
    ]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-waiting-worker-{os.getpid()}.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "worker.py")],
            env={**os.environ, **stack.worker_environment(), **notifier_env},
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=REPO_ROOT,
        )
    try:
        await _until_polling(worker, log_path)
        await asyncio.sleep(2)
        memory = WorkerMemory(worker.pid)
        idle = memory.rss()
        with memory:
            started = time.perf_counter()
            await _start_all(stack, accounts)
            all_started = time.perf_counter() - started
            await _until_all_wait(stack, accounts, worker)
            all_waiting = time.perf_counter() - started
            await asyncio.sleep(5)
            steady = memory.rss()
        await _terminate_all(stack, accounts)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log_path.unlink(missing_ok=True)
    report = Report(
        "waiting",
        columns=[
            "deletions",
            "all started s",
            "all waiting s",
            "runs/s",
            "idle MiB",
            "peak MiB",
            "steady MiB",
        ],
        target=f"peak worker RSS <= {TARGET_MIB} MiB",
    )
    report.rows.append(
        [
            size.deletions,
            all_started,
            all_waiting,
            size.deletions / all_waiting,
            _mib(idle),
            _mib(memory.peak),
            _mib(steady),
        ]
    )
    report.met = _mib(memory.peak) <= TARGET_MIB
    report.figures = {
        "deletions": size.deletions,
        "seconds_to_start": round(all_started, 1),
        "seconds_until_all_wait": round(all_waiting, 1),
        "worker_idle_rss_mib": round(_mib(idle), 1),
        "worker_peak_rss_mib": round(_mib(memory.peak), 1),
        "worker_steady_rss_mib": round(_mib(steady), 1),
        "max_cached_workflows": stack.settings.worker_max_cached_workflows,
    }
    report.notes.append("the idle RSS is the baseline: the worker before any run started")
    return report


async def _until_polling(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    async with asyncio.timeout(60):
        while "worker polling task queue" not in log_path.read_text(errors="replace"):
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited: {log_path.read_text()[-2000:]}")
            await asyncio.sleep(0.2)


async def _start_all(stack: Stack, accounts: list[str]) -> None:
    deletions = DeletionClient(stack.client, stack.pool, stack.settings.temporal_task_queue)
    gate = asyncio.Semaphore(50)

    async def start(account_id: str) -> None:
        async with gate:
            await deletions.start(account_id, requested_by="benchmark")

    await asyncio.gather(*(start(a) for a in accounts))


async def _until_all_wait(
    stack: Stack, accounts: list[str], worker: subprocess.Popen[bytes]
) -> None:
    """Until every run has sent its code (its challenge is recorded) and waits for it."""
    shown = time.monotonic()
    while True:
        sent = await stack.pool.fetchval(
            "select count(distinct account_id) from verification_challenges"
            " where account_id = any($1::text[])",
            accounts,
        )
        if sent == len(accounts):
            return
        if worker.poll() is not None:
            raise RuntimeError("the worker exited while the runs were starting")
        if time.monotonic() - shown >= 15:
            shown = time.monotonic()
            sys.stderr.write(f"waiting: {sent:,} of {len(accounts):,} runs wait for their code\n")
        await asyncio.sleep(0.5)


async def _terminate_all(stack: Stack, accounts: list[str]) -> None:
    """The runs would wait a day for their codes: end them."""
    gate = asyncio.Semaphore(50)

    async def end(account_id: str) -> None:
        async with gate:
            await stack.client.get_workflow_handle(workflow_id_for(account_id)).terminate(
                reason="benchmark finished"
            )

    await asyncio.gather(*(end(a) for a in accounts))
