"""The benchmarks keep working: each runs once at its tiny size on the test servers.

No timing is asserted here (timings live in benchmarks/RESULTS.md); what is asserted is that
each benchmark measures what it names: the deletions it drives finish, the rows it purges are
the rows it seeded, and the baseline keeps the saga's shape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from temporalio.client import Client

from benchmarks import mixes, throughput
from benchmarks.harness import CpuMeter, Report
from benchmarks.history import Shape, flat_in_rows
from benchmarks.runner import BENCHMARKS, run_benchmark
from benchmarks.stack import Stack, stack_on
from tests.support import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(client: Client, database_url: str, task_queue: str) -> AsyncIterator[Stack]:
    async with stack_on(
        client.service_client.config.target_host,
        database_url,
        payload_keys=os.environ["PAYLOAD_KEYS"],
        task_queue=task_queue,
        namespace=client.namespace,
    ) as stack:
        yield stack


def figures(report: Report) -> dict[str, Any]:
    """The JSON line the report prints last, as a reader of the output would parse it."""
    last = report.render().splitlines()[-1]
    parsed: dict[str, Any] = json.loads(last)
    assert parsed["benchmark"] == report.benchmark
    assert parsed["target"] and parsed["met"] in (True, False)
    assert parsed["machine"]["cpus"] >= 1
    return parsed


def test_every_benchmark_the_issue_names_is_runnable() -> None:
    assert set(BENCHMARKS) == {
        "throughput",
        "throughput-worker",
        "throughput-http",
        "latency",
        "purge",
        "history",
        "waiting",
        "http",
        "work",
    }


async def test_throughput_drains_every_deletion_of_both_workflows(stack: Stack) -> None:
    line = figures(await run_benchmark("throughput", stack, "tiny"))
    assert line["saga_deletions_per_s"] > 0 and line["bare_deletions_per_s"] > 0
    assert line["ratio"] == pytest.approx(
        line["saga_deletions_per_s"] / line["bare_deletions_per_s"], rel=0.05
    )
    deleted = await stack.pool.fetchval("select count(*) from accounts where status = 'deleted'")
    assert deleted == line["deletions"] * line["runs"]
    assert line["cpu_s_per_deletion"]["saga"]["benchmark"] > 0


async def test_the_http_benchmark_deletes_through_each_kind_of_http_product(stack: Stack) -> None:
    line = figures(await run_benchmark("http", stack, "tiny"))
    assert all(line[f"p50_ms_{mode}"] > 0 for mode in ("none", "200", "202"))
    purges = await stack.pool.fetch(
        "select product, driver, reported_rows from product_purges where driver = 'http'"
    )
    assert sorted((r["product"], r["reported_rows"]) for r in purges) == [
        ("bench_200", 7),
        ("bench_202", 7),
    ]
    by_callback = await stack.pool.fetchval(
        "select count(*) from http_product_callbacks where product = 'bench_202'"
    )
    assert by_callback == line["deletions"] == 1


def test_the_cpu_meter_counts_a_servers_children() -> None:
    """Where a round's CPU went: a server's work is mostly done by its children (PostgreSQL)."""
    burn = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'sum(range(10**7))'])"
    server = subprocess.Popen([sys.executable, "-c", f"import time; {burn}; time.sleep(30)"])
    try:
        with CpuMeter({"server": server.pid}) as meter:
            time.sleep(2)
    finally:
        server.kill()
        server.wait()
    assert meter.seconds["server"] >= 0.1
    assert meter.seconds["benchmark"] < meter.seconds["server"]


async def test_latency_times_each_deletion_from_acceptance_to_release(stack: Stack) -> None:
    line = figures(await run_benchmark("latency", stack, "tiny"))
    assert 0 < line["saga_p50_ms"] <= line["saga_p95_ms"]
    assert 0 < line["bare_p50_ms"] <= line["bare_p95_ms"]
    released = await stack.pool.fetchval(
        "select count(*) from audit_events where kind = 'identifiers_released'"
    )
    assert released == line["deletions"]


async def test_purge_counts_the_rows_it_seeded_for_both_methods(stack: Stack) -> None:
    report = await run_benchmark("purge", stack, "tiny")
    line = figures(report)
    plain_rows, saga_rows = (row[2] for row in report.rows)
    # Six products of 200 rows and five parent rows; the saga also purges the sign-in
    # product's verification challenge and attempt.
    assert plain_rows == 6 * 200 + 5
    assert saga_rows == plain_rows + 2 == line["rows"]
    assert line["saga_longest_transaction_s"] > 0
    # Among other accounts' rows (the account at most 5 % of a table), which stay.
    assert 0 < line["account_share_max"] <= 0.05
    left = await stack.pool.fetchval(
        "select count(*) from storage_objects where account_id not like 'bench-bg-%'"
    )
    assert left == 0
    others = await stack.pool.fetchval("select count(*) from storage_objects")
    assert others == line["background_rows_per_table"] >= 19 * 200


async def test_the_bare_workflow_keeps_the_sagas_shape(stack: Stack) -> None:
    line = figures(await run_benchmark("history", stack, "tiny"))
    assert line["saga_activities"] == line["bare_activities"] == 17
    assert line["saga_events"] > 0 and line["bare_events"] > 0
    assert line["same_shape_as_bare"] is True  # activities, local activities, signals


async def test_work_counts_visibility_writes_and_the_statements_of_each_activity(
    stack: Stack,
) -> None:
    line = figures(await run_benchmark("work", stack, "tiny"))
    assert line["met"] is True
    assert line["saga_visibility_writes"] - line["bare_visibility_writes"] == 6
    by_activity = line["sql_statements_by_activity"]
    assert sum(by_activity.values()) == line["saga_sql_statements"]
    assert {"purge_product", "record_progress", "release_identifiers"} <= set(by_activity)
    assert "other" not in by_activity  # every statement of the worker is an activity's


def test_only_workflow_tasks_may_vary_with_rows_at_most_one_per_waking_event() -> None:
    together = Shape(events=103, activities=17, local_activities=6, workflow_tasks=12, signals=1)
    apart = Shape(events=124, activities=17, local_activities=6, workflow_tasks=19, signals=1)
    assert together.other_events == apart.other_events == 67
    assert apart.wakeups == 19
    assert flat_in_rows([together, apart])

    more_tasks_than_wakeups = Shape(
        events=127, activities=17, local_activities=6, workflow_tasks=20, signals=1
    )
    assert not flat_in_rows([together, more_tasks_than_wakeups])
    batch_per_activity = Shape(
        events=106, activities=18, local_activities=6, workflow_tasks=12, signals=1
    )
    assert not flat_in_rows([together, batch_per_activity])
    recorded_progress = Shape(
        events=104, activities=17, local_activities=6, workflow_tasks=12, signals=1
    )
    assert not flat_in_rows([together, recorded_progress])


async def test_waiting_runs_are_held_by_a_worker_process(stack: Stack) -> None:
    line = figures(await run_benchmark("waiting", stack, "tiny"))
    assert line["deletions"] == 20
    assert 0 < line["worker_idle_rss_mib"] <= line["worker_peak_rss_mib"]
    challenges = await stack.pool.fetchval("select count(*) from verification_challenges")
    assert challenges == 20


def test_python_m_benchmarks_runs_on_its_own_embedded_stack() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "history", "--size", "tiny"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={k: v for k, v in os.environ.items() if k not in ("PAYLOAD_KEYS",)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "== history =="
    assert json.loads(lines[-1])["benchmark"] == "history"


async def test_throughput_with_each_driver_in_the_mix_schedules_the_bare_shapes_activities(
    stack: Stack,
) -> None:
    """Each mix drains every deletion of both workflows; the saga's activities by queue are the
    bare shape's (the benchmark fails otherwise), and hold what each driver adds."""
    sql = figures(await run_benchmark("throughput", stack, "tiny"))
    worker = figures(await run_benchmark("throughput-worker", stack, "tiny"))
    http = figures(await run_benchmark("throughput-http", stack, "tiny"))
    for line in (sql, worker, http):
        assert line["saga_deletions_per_s"] > 0 and line["bare_deletions_per_s"] > 0
        assert set(line["cpu_s_per_deletion"]) == {"bare", "saga"}
        assert line["cpu_s_per_deletion"]["saga"]["benchmark"] > 0
    deleted = await stack.pool.fetchval("select count(*) from accounts where status = 'deleted'")
    assert deleted == sum(line["deletions"] * line["runs"] for line in (sql, worker, http))

    assert sql["mix"] == "sql" and set(sql["activities_by_queue"]) == {"run"}
    own = sql["activities_by_queue"]["run"]
    assert worker["products_beyond_registry"] == ["archive (worker)"]
    # Its live-resource checks, its purge and its late rows on its own queue; the record here.
    assert worker["activities_by_queue"]["account-deletion-product-archive"] >= 3
    assert worker["activities_by_queue"]["run"] >= own + 1
    assert worker["product_rows_per_account"] > 0
    assert http["products_beyond_registry"] == ["bench_http (http)"]
    assert set(http["activities_by_queue"]) == {"run"}
    assert http["activities_by_queue"]["run"] >= own + 1  # the request and its record

    purges = await stack.pool.fetch(
        "select product, driver, count(*) as n, sum(reported_rows) as reported"
        " from product_purges where driver <> 'sql' group by product, driver"
    )
    assert sorted((r["product"], r["driver"], r["n"]) for r in purges) == [
        ("archive", "worker", worker["deletions"] * worker["runs"]),
        ("bench_http", "http", http["deletions"] * http["runs"]),
    ]
    left = await stack.pool.fetchval(
        "select count(*) from pg_database where datname like 'archive_bench_%'"
    )
    assert left == 0, "the worker mix's archive database outlived its benchmark"


async def test_a_bare_shape_without_the_drivers_activities_fails_the_benchmark(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = mixes.mix_of

    @asynccontextmanager
    async def bare_without_products(name: str, on: Stack) -> AsyncIterator[mixes.Mix]:
        async with real(name, on) as mix:
            yield replace(mix, bare_products=[])

    monkeypatch.setattr(throughput, "mix_of", bare_without_products)
    with pytest.raises(RuntimeError, match="no longer schedules the saga's activities"):
        await run_benchmark("throughput-http", stack, "tiny")
