"""Tracing and business metrics.

Tracing: spans exported to an in-process exporter (the OpenTelemetry SDK's in-memory one) form
one trace from the API request that starts a deletion, through its workflow, to the purge
activities; no span holds the account's email, phone or code. Metrics: the business metrics
recorded through the SDK's metric meter are served with the SDK's at the worker's /metrics."""

from __future__ import annotations

import socket

import asyncpg
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.config import Settings
from service.api import create_app
from starter.connection import connect
from tests.support import API_TOKEN, contact_of, in_process_api, new_account, running_worker
from tests.support.inbox import Inbox

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The process's tracer provider (set once per process), exporting to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "no other test sets a tracer provider"
    return exporter


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def attribute_text(span: ReadableSpan) -> str:
    return " ".join(f"{key}={value!s}" for key, value in (span.attributes or {}).items())


async def test_one_trace_runs_from_the_api_through_the_workflow_to_the_purges_and_metrics_count(
    spans: InMemorySpanExporter, client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    metrics_address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics_address))
    )
    settings = Settings(
        temporal_address=client.service_client.config.target_host,
        temporal_namespace=client.namespace,
        temporal_task_queue=task_queue,
        api_token=API_TOKEN,
        otel_exporter_otlp_endpoint="http://127.0.0.1:4318",  # tracing on; nothing is sent
    )
    traced = await connect(settings, runtime)
    inbox = Inbox()
    account_id = await new_account(pool)
    contact = await contact_of(pool, account_id)
    app = create_app(settings, pool=pool, client=traced)
    async with running_worker(traced, pool, task_queue, inbox), in_process_api(app) as api:
        started = await api.post(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
        assert started.status_code == 202, started.text
        code = await inbox.next_code(account_id)
        wrong = "000000" if code != "000000" else "111111"
        path = f"/v1/accounts/{account_id}/deletion/verification"
        assert (await api.post(path, json={"code": wrong}, headers=AUTH)).json()[
            "outcome"
        ] == "wrong"
        assert (await api.post(path, json={"code": code}, headers=AUTH)).json()[
            "outcome"
        ] == "accepted"
        await traced.get_workflow_handle(started.json()["workflow_id"]).result()
        async with httpx.AsyncClient() as http:
            exposition = (await http.get(f"http://{metrics_address}/metrics")).text

    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.name == "POST /v1/accounts/{account_id}/deletion"]
    assert request.parent is None and request.context is not None
    in_trace = [s for s in finished if s.context and s.context.trace_id == request.context.trace_id]
    names = {s.name for s in in_trace}
    assert "StartWorkflow:AccountDeletion" in names
    assert "RunWorkflow:AccountDeletion" in names
    purges = [s for s in in_trace if s.name == "RunActivity:purge_product"]
    assert purges, f"no purge activity in the request's trace: {sorted(names)}"
    assert any(s.name == "RunActivity:finalize_deletion" for s in in_trace)
    for span in finished:
        text = span.name + " " + attribute_text(span)
        for secret in (contact["email"], contact["phone"], code):
            assert secret not in text, span.name

    def sample(name: str, **labels: str) -> float:
        total = 0.0
        for line in exposition.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    assert sample("account_deletion_deletions_started") == 1, exposition
    assert sample("account_deletion_deletions_ended", outcome="DELETED") == 1
    assert sample("account_deletion_stage_seconds_count", stage="PURGING") == 1
    assert sample("account_deletion_rows_purged", product="object_storage") > 0
    assert sample("account_deletion_codes_sent", channel="email") == 1
    assert sample("account_deletion_code_attempts", outcome="wrong") == 1
    assert sample("account_deletion_code_attempts", outcome="accepted") == 1
    assert "temporal_activity_execution" in exposition or "temporal_workflow" in exposition
