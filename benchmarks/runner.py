"""The benchmarks by name, each with its sizes: `full` (RESULTS.md) and `tiny` (the tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import history, http_driver, latency, purge, throughput, waiting, work
from benchmarks.harness import Report
from benchmarks.stack import Stack

BenchmarkRun = Callable[[Stack, Any], Awaitable[Report]]

BENCHMARKS: dict[str, tuple[BenchmarkRun, dict[str, Any]]] = {
    "throughput": (throughput.run, throughput.SIZES),
    "throughput-worker": (throughput.run_worker, throughput.SIZES),
    "throughput-http": (throughput.run_http, throughput.SIZES),
    "latency": (latency.run, latency.SIZES),
    "purge": (purge.run, purge.SIZES),
    "history": (history.run, history.SIZES),
    "waiting": (waiting.run, waiting.SIZES),
    "http": (http_driver.run, http_driver.SIZES),
    "work": (work.run, work.SIZES),
}


async def run_benchmark(name: str, stack: Stack, size: str) -> Report:
    run, sizes = BENCHMARKS[name]
    return await run(stack, sizes[size])
