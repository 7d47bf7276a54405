"""OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

When on, each process exports its spans over OTLP/HTTP (the OpenTelemetry SDK reads the
standard `OTEL_*` variables: endpoint, headers, `OTEL_SERVICE_NAME`); the API opens a span per
request (named by its route template, never the raw path: verification links are credentials);
the Temporal client carries the trace into the workflow and its activities through the SDK's
`TracingInterceptor`, which workers built on that client use too. One trace thus runs from an
API request through the workflow to every purge activity. Spans hold ids, route templates,
workflow and activity types only: no payload is put in a span.
"""

from __future__ import annotations

import os

from temporalio.client import Interceptor

from core.config import Settings


def tracing_enabled(settings: Settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def configure_tracing(settings: Settings, service: str) -> None:
    """Installs the process's tracer provider, exporting in batches over OTLP/HTTP."""
    if not tracing_enabled(settings):
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def flush_tracing() -> None:
    """Exports what is buffered (before a process exits without running its atexit hooks)."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if callable(force_flush):
        force_flush()


def tracing_interceptors(settings: Settings) -> list[Interceptor]:
    """The Temporal client's interceptors: the SDK's tracing one when tracing is on."""
    if not tracing_enabled(settings):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
