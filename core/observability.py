"""Logs, metrics and the SDK runtime of every process.

- Logs: `configure_logging` sends the root logger to stderr as one JSON object per line
  (`LOG_FORMAT=json`) or as plain text (`LOG_FORMAT=text`). A JSON line has `time`, `level`,
  `logger`, `message`, the Temporal context the SDK's workflow and activity loggers attach
  (`workflow_id`, `run_id`, `activity_type`, ...) and `exception`. Nothing else of a record is
  written (no arbitrary `extra`), so what reaches the logs is the message the code wrote,
  which never holds a code, email or phone (tests/test_log_privacy.py).
- Worker metrics: `sdk_runtime` is the SDK runtime of the worker process, serving the SDK's
  Prometheus metrics at `http://WORKER_METRICS_ADDRESS/metrics`, with Core's own log lines
  forwarded into Python logging so that they are JSON lines like the rest.
- API metrics: `RequestMetrics` counts and times requests by method, route template and status.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.routing import BaseRoute, Match
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from core.config import ConfigurationError, Settings

LogFormat = Literal["json", "text"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_CONTEXT_FIELDS: dict[str, dict[str, str]] = {
    # record attribute -> {key in the SDK's dict: key in the JSON line}
    "temporal_workflow": {
        "workflow_id": "workflow_id",
        "run_id": "run_id",
        "workflow_type": "workflow_type",
        "task_queue": "task_queue",
        "namespace": "namespace",
        "attempt": "attempt",
        "update_id": "update_id",
        "update_name": "update_name",
    },
    "temporal_activity": {
        "workflow_id": "workflow_id",
        "workflow_run_id": "run_id",
        "workflow_type": "workflow_type",
        "activity_type": "activity_type",
        "activity_id": "activity_id",
        "attempt": "attempt",
        "task_queue": "task_queue",
        "namespace": "namespace",
    },
}
"""The context `temporalio.workflow.logger` and `temporalio.activity.logger` put on records."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the Temporal
    context of workflow and activity records, and the exception as one string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message_without_context(record),
        }
        for attribute, fields in _CONTEXT_FIELDS.items():
            context = getattr(record, attribute, None)
            if isinstance(context, Mapping):
                line.update({out: context[key] for key, out in fields.items() if key in context})
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _message_without_context(record: logging.LogRecord) -> str:
    """The message, without the ` ({...})` the SDK's loggers append: here it is fields."""
    message = record.getMessage()
    for attribute in _CONTEXT_FIELDS:
        context = getattr(record, attribute, None)
        if isinstance(context, Mapping):
            suffix = f" ({context})"
            if message.endswith(suffix):
                message = message[: -len(suffix)]
    return message


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (and replaces when called again)."""


def configure_logging(settings: Settings, *, default_format: LogFormat = "json") -> None:
    """Sends the root logger to stderr at LOG_LEVEL, as JSON or text.

    Args:
        settings: LOG_LEVEL, and LOG_FORMAT which wins over `default_format` when set.
        default_format: the process's choice when LOG_FORMAT is unset: `json` for the worker
            and the API (their logs go to a collector), `text` for `dev` and the command-line
            verbs (a person reads them).
    """
    chosen = settings.log_format or default_format
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Python warnings become log records too, so that every line of the process is JSON.
    logging.captureWarnings(True)


def metrics_bind_address(settings: Settings) -> str | None:
    """WORKER_METRICS_ADDRESS as `host:port`, or None when metrics are off."""
    address = settings.worker_metrics_address.strip()
    if address.lower() in ("", "off"):
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"WORKER_METRICS_ADDRESS must be host:port (e.g. 0.0.0.0:9464) or off, not {address!r}"
        )
    return address


@functools.cache
def sdk_runtime(metrics_address: str | None) -> Runtime:
    """The SDK runtime of this process (made once: each runtime has its own thread pool and
    the metrics port can be bound only once).

    Serves the SDK's Prometheus metrics at `http://<metrics_address>/metrics` when an address
    is given, and forwards Core's warnings and errors to the `temporalio.core` Python logger.
    """
    core_logger = logging.getLogger("temporalio.core")
    telemetry = TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=core_logger, append_target_to_name=False),
        ),
        metrics=None if metrics_address is None else PrometheusConfig(bind_address=metrics_address),
    )
    try:
        return Runtime(telemetry=telemetry)
    except ValueError as error:  # the port is taken, or the address does not parse
        raise ConfigurationError(
            f"cannot serve worker metrics on WORKER_METRICS_ADDRESS={metrics_address}: {error}"
        ) from error


UNMATCHED_ROUTE = "<unmatched>"
"""The route label of a request that matches no route (a 404 for an unknown path)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(routes: Iterable[BaseRoute], scope: MutableMapping[str, Any]) -> str:
    """The path template of the route the router will pick (`/v1/accounts/{account_id}/...`),
    never the raw path: ids stay out of the labels and their number stays bounded."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        if match is Match.FULL:
            return path
        if match is Match.PARTIAL and partial is None:
            partial = path  # the path matches, the method does not: a 405 of that route
    return partial or UNMATCHED_ROUTE


class RequestMetrics:
    """HTTP request count and latency of one app, in a registry of its own (so that apps built
    in the same process, as in the tests, never clash), with the process's own metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self._requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels,
            registry=self.registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the response headers), by method, route "
            "template and status.",
            labels,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method if method in _METHODS else "OTHER", route, str(status))
        self._requests.labels(*labels).inc()
        self._duration.labels(*labels).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
