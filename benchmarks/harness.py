"""What the benchmarks share: workers for the saga and the bare baseline, the code relay that
submits a code as soon as it is sent, statistics, and the report (a table, then one JSON line)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import statistics
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.worker import Worker

from activities.notify import Message
from benchmarks.bare import BareActivities, BareDeletion, BareRequest, BareResult
from benchmarks.stack import Stack
from contract.models import DeletionReceipt, SubmitCodeInput
from contract.names import workflow_id_for
from worker import build_worker, cache_bytecode
from workflows.account_deletion import AccountDeletion

CODE = re.compile(r"\b(\d{6,8})\b")
BARE_TASK_QUEUE_SUFFIX = "-bare"

Relay = Callable[[str, str], Awaitable[None]]
"""Called with (account id, code) as soon as a code is sent."""


def signalling(stack: Stack, workflow_id_of: Callable[[str], str]) -> Relay:
    """A relay that submits each code by signal to the account's run, as soon as it is sent."""

    async def relay(account_id: str, code: str) -> None:
        await stack.client.get_workflow_handle(workflow_id_of(account_id)).signal(
            "submit_verification_code", SubmitCodeInput(code=code)
        )

    return relay


class CpuMeter:
    """CPU seconds spent over a block by this process (its workers and clients) and by each
    of the stack's servers with their children: where a round's time went."""

    def __init__(self, servers: dict[str, int]) -> None:
        self._processes = {
            "benchmark": psutil.Process(),
            **{name: psutil.Process(pid) for name, pid in servers.items()},
        }
        self._start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {}
        for name, process in self._processes.items():
            times = process.cpu_times()
            total = times.user + times.system
            if name != "benchmark":  # the benchmark's children are the servers themselves
                total += times.children_user + times.children_system
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child_times = child.cpu_times()
                        total += child_times.user + child_times.system
            now[name] = total
        return now

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.seconds = {name: end[name] - self._start[name] for name in end}


class RelayNotifier:
    """The product's Notifier interface, handing each code on as the user's device would."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    async def deliver(self, message: Message) -> None:
        if match := CODE.search(message.body):
            await self._relay(message.account_id, match.group(1))


@asynccontextmanager
async def saga_worker(stack: Stack, relay: Relay) -> AsyncIterator[Worker]:
    """The product's worker, built as `worker.py` builds it, in this process."""
    async with build_worker(stack.client, stack.pool, RelayNotifier(relay), stack.settings) as w:
        yield w


def bare_task_queue(stack: Stack) -> str:
    return stack.settings.temporal_task_queue + BARE_TASK_QUEUE_SUFFIX


@asynccontextmanager
async def bare_worker(stack: Stack, relay: Relay) -> AsyncIterator[Worker]:
    """A worker for the baseline with the product worker's concurrency and cache settings."""
    settings = stack.settings
    activities = BareActivities(relay)
    cache_bytecode(BareDeletion)
    async with Worker(
        stack.client,
        task_queue=bare_task_queue(stack),
        workflows=[BareDeletion],
        activities=[
            activities.step,
            activities.issue_code,
            activities.release,
            activities.list_products,
        ],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_local_activities=settings.worker_max_concurrent_activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
    ) as w:
        yield w


def bare_workflow_id(account_id: str) -> str:
    return f"bare-deletion-{account_id}"


async def bare_history(stack: Stack, relay: Relay, prefix: str) -> WorkflowHistory:
    """One bare run, to its end, and its history (the baseline of counted benchmarks)."""
    account_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
    async with bare_worker(stack, relay):
        handle = await stack.client.start_workflow(
            BareDeletion.run,
            BareRequest(account_id=account_id),
            id=bare_workflow_id(account_id),
            task_queue=bare_task_queue(stack),
        )
        await handle.result()
    return await handle.fetch_history()


def saga_handle(stack: Stack, account_id: str) -> WorkflowHandle[AccountDeletion, DeletionReceipt]:
    return stack.client.get_workflow_handle_for(AccountDeletion.run, workflow_id_for(account_id))


def bare_handle(stack: Stack, account_id: str) -> WorkflowHandle[BareDeletion, BareResult]:
    return stack.client.get_workflow_handle_for(BareDeletion.run, bare_workflow_id(account_id))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    memory = 0
    try:
        with open("/proc/meminfo") as meminfo:
            memory = int(meminfo.readline().split()[1]) // 1024
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_mib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


@dataclass
class Report:
    """One benchmark's outcome: a readable table, then its figures as one JSON line."""

    benchmark: str
    columns: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            **self.figures,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "machine": machine(),
        }

    def render(self) -> str:
        cells = [[str(c) for c in self.columns]] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [f"== {self.benchmark} =="]
        for index, row in enumerate(cells):
            lines.append(
                "  ".join(
                    c.rjust(w) if index else c.ljust(w) for c, w in zip(row, widths, strict=True)
                )
            )
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines += [f"note: {note}" for note in self.notes]
        if self.ratio is not None:
            lines.append(
                f"ratio {self.ratio:.3f}; target {self.target}; {'met' if self.met else 'MISSED'}"
            )
        elif self.target:
            lines.append(f"target {self.target}; {'met' if self.met else 'MISSED'}")
        lines.append(json.dumps(self.as_json(), sort_keys=False, default=str))
        return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
