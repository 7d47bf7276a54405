"""Observability: JSON logs with the Temporal context and no PII, the worker's SDK metrics,
the API's request metrics by route template."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from contract.names import workflow_id_for
from core.config import ConfigurationError, Settings
from core.observability import (
    UNMATCHED_ROUTE,
    JsonFormatter,
    configure_logging,
    metrics_bind_address,
)
from service.api import create_app
from tests.support import (
    REPO_ROOT,
    Stack,
    confirm_after_one_wrong_code,
    contact_of,
    in_process_api,
    new_account,
)
from tests.support.gateway import new_webhook_secret
from tests.test_processes import free_port

TOKEN = "observability-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _record(message: str, *args: object, **attributes: Any) -> logging.LogRecord:
    record = logging.LogRecord("some.logger", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(attributes)
    return record


def test_a_json_line_has_time_level_logger_message_and_nothing_else() -> None:
    record = _record("purged %s: %d rows", "compute", 12, unrelated={"email": "a@example.com"})
    line = json.loads(JsonFormatter().format(record))
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["level"] == "WARNING"
    assert line["logger"] == "some.logger"
    assert line["message"] == "purged compute: 12 rows"
    assert line["time"].endswith("+00:00")


def test_workflow_context_is_flattened_and_dropped_from_the_message() -> None:
    # What temporalio.workflow.logger makes of `workflow.logger.warning("...")` in an update.
    details = {
        "attempt": 1,
        "namespace": "default",
        "run_id": "run-1",
        "task_queue": "account-deletion",
        "workflow_id": "account-deletion-acct-1",
        "workflow_type": "AccountDeletion",
        "update_id": "u-1",
        "update_name": "verify_code",
    }
    record = _record(
        f"cancellation refused: purging has begun ({details})", temporal_workflow=details
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "cancellation refused: purging has begun"
    assert line["workflow_id"] == "account-deletion-acct-1"
    assert line["run_id"] == "run-1"
    assert line["workflow_type"] == "AccountDeletion"
    assert line["update_name"] == "verify_code"


def test_an_exception_is_one_string_on_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info(), None
        )
    text = JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["exception"].startswith("Traceback")
    assert "ValueError: boom" in line["exception"]


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """Puts the root logger back as it was (pytest's own handlers included)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.mark.usefixtures("root_handlers")
def test_log_format_wins_over_the_process_default() -> None:
    root = logging.getLogger()

    def installed() -> logging.Formatter | None:
        ours = [h for h in root.handlers if type(h).__module__ == "core.observability"]
        assert len(ours) == 1  # called again, it replaces its handler instead of adding one
        return ours[0].formatter

    configure_logging(Settings(log_format=None), default_format="json")
    assert isinstance(installed(), JsonFormatter)
    configure_logging(Settings(log_format=None), default_format="text")
    assert not isinstance(installed(), JsonFormatter)
    configure_logging(Settings(log_format="json", log_level="debug"), default_format="text")
    assert isinstance(installed(), JsonFormatter)
    assert root.level == logging.DEBUG


def test_worker_metrics_address_can_be_turned_off_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORKER_METRICS_ADDRESS", raising=False)  # conftest turns it off
    assert metrics_bind_address(Settings()) == "127.0.0.1:9464"
    assert metrics_bind_address(Settings(worker_metrics_address="off")) is None
    assert metrics_bind_address(Settings(worker_metrics_address="")) is None
    assert metrics_bind_address(Settings(worker_metrics_address="0.0.0.0:9100")) == "0.0.0.0:9100"
    for wrong in ("9464", "localhost", "host:port", "host:70000"):
        with pytest.raises(ConfigurationError, match="WORKER_METRICS_ADDRESS"):
            metrics_bind_address(Settings(worker_metrics_address=wrong))


async def _json_lines(
    stream: asyncio.StreamReader, lines: list[dict[str, Any]], until: str, timeout: float = 60
) -> None:
    """Reads lines, each of which must be a JSON object, until one has `until` as message."""
    async with asyncio.timeout(timeout):
        async for raw in stream:
            text = raw.decode()
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON line: {text!r}") from None
            assert isinstance(line, dict) and {"time", "level", "logger", "message"} <= set(line)
            lines.append(line)
            if line["message"] == until:
                return
    raise AssertionError(f"the process ended before logging {until!r}: {lines}")


@pytest.mark.slow
async def test_the_worker_process_serves_sdk_metrics_and_logs_json(
    client: Client, database_url: str, task_queue: str
) -> None:
    metrics_address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    env.update(
        {
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "DATABASE_URL": database_url,
            "WORKER_METRICS_ADDRESS": metrics_address,
            "NOTIFIER": "webhook",
            "NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/never-called",
            "NOTIFY_WEBHOOK_SECRET": new_webhook_secret(),
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        await _json_lines(process.stdout, lines, f"worker polling task queue {task_queue}")
        messages = [line["message"] for line in lines]
        assert f"worker metrics at http://{metrics_address}/metrics" in messages

        def ours(families: dict[str, list[dict[str, str]]], name: str) -> bool:
            return any(labels.get("task_queue") == task_queue for labels in families.get(name, []))

        families: dict[str, list[dict[str, str]]] = {}
        async with httpx.AsyncClient(base_url=f"http://{metrics_address}") as http:
            try:
                async with asyncio.timeout(30):
                    # The worker starts, then its pollers report once they have polled.
                    while not (
                        ours(families, "temporal_worker_start")
                        and ours(families, "temporal_long_request")
                    ):
                        await asyncio.sleep(0.2)
                        response = await http.get("/metrics")
                        assert response.status_code == 200
                        families = {
                            family.name: [sample.labels for sample in family.samples]
                            for family in text_string_to_metric_families(response.text)
                        }
            except TimeoutError:
                raise AssertionError(f"no worker metrics: {sorted(families)}") from None
        assert "temporal_worker_task_slots_available" in families

        process.send_signal(signal.SIGTERM)
        await _json_lines(process.stdout, lines, "worker stopped", timeout=45)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        rest = await process.stdout.read()
        assert rest == b"", rest
        assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL")], lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_activity_logs_carry_the_run_and_activity_and_no_pii(stack: Stack) -> None:
    pool, task_queue, inbox, deletions = stack.pool, stack.task_queue, stack.inbox, stack.deletions
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    account_id = await new_account(pool)
    account = await contact_of(pool, account_id)
    try:
        async with stack.worker():
            code = await confirm_after_one_wrong_code(deletions, inbox, account_id)
            handle = await deletions.handle(account_id)
            await handle.result()
            run_id = (await handle.describe()).run_id
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    text = output.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    accepted = [line for line in lines if line["message"] == "verification attempt: accepted"]
    assert len(accepted) == 1, lines
    assert accepted[0]["logger"] == "temporalio.activity"
    assert accepted[0]["workflow_id"] == workflow_id_for(account_id)
    assert accepted[0]["run_id"] == run_id
    assert accepted[0]["activity_type"] == "check_verification_code"
    assert accepted[0]["activity_id"]
    assert accepted[0]["attempt"] == 1
    assert accepted[0]["task_queue"] == task_queue
    purged = [line for line in lines if line["message"].startswith("purged ")]
    assert purged and all(line["activity_type"] == "purge_product" for line in purged)
    assert all(line["run_id"] == run_id for line in purged)
    for secret in (code, account["email"], account["phone"], account["phone"][1:]):
        assert secret not in text


@pytest.fixture
def api_token() -> str:
    """The `api` fixture's token in this module."""
    return TOKEN


def _requests(exposition: str) -> dict[tuple[str, str, str], float]:
    """http_requests_total by (method, route, status)."""
    counts = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] = sample.value
    return counts


async def test_api_metrics_count_requests_by_route_template_and_status(
    api: httpx.AsyncClient,
) -> None:
    registered = await api.post(
        "/v1/accounts",
        json={"user_name": "metrics", "email": "metrics@example.com", "phone": "+14155550188"},
        headers=AUTH,
    )
    assert registered.status_code == 201
    account_id = registered.json()["account_id"]
    unknown_id = "acct-nosuchaccount42"
    status = "/v1/accounts/{account_id}/deletion"
    answers = [
        await api.get(f"/v1/accounts/{account_id}/deletion"),  # no token
        await api.get(f"/v1/accounts/{account_id}/deletion", headers={"Authorization": "Bearer x"}),
        await api.get(f"/v1/accounts/{unknown_id}/deletion", headers=AUTH),
        await api.get(f"/no/such/route/{account_id}"),
        await api.get("/verify/a-signed-link-is-a-credential"),
        await api.request("BREW", "/healthz"),
        await api.post(
            "/v1/accounts",
            content=b"{" + b" " * 20000 + b"}",
            headers={**AUTH, "Content-Type": "application/json"},
        ),
    ]
    assert [answer.status_code for answer in answers[:4]] == [401, 401, 404, 404]
    assert answers[6].status_code == 413

    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counts = _requests(response.text)
    assert counts[("POST", "/v1/accounts", "201")] == 1
    assert counts[("GET", status, "401")] == 2
    assert counts[("GET", status, "404")] == 1
    assert counts[("GET", UNMATCHED_ROUTE, "404")] == 1
    assert counts[("POST", "/v1/accounts", "413")] == 1
    assert counts[("OTHER", "/healthz", str(answers[5].status_code))] == 1
    assert ("GET", "/verify/{link}", str(answers[4].status_code)) in counts
    assert "http_request_duration_seconds_bucket" in response.text
    assert "process_resident_memory_bytes" in response.text
    for raw in (account_id, unknown_id, "a-signed-link-is-a-credential", "BREW"):
        assert raw not in response.text

    again = _requests((await api.get("/metrics")).text)
    assert again[("GET", "/metrics", "200")] == 1


async def test_api_metrics_need_the_metrics_token_when_one_is_set(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = Settings(
        api_token=TOKEN,
        metrics_token="scrape-only-token-0123",
        temporal_task_queue=task_queue,
    )
    app = create_app(settings, pool=pool, client=client)
    async with in_process_api(app) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=AUTH)).status_code == 401
        scraped = await http.get(
            "/metrics", headers={"Authorization": "Bearer scrape-only-token-0123"}
        )
        assert scraped.status_code == 200
        assert "http_requests_total" in scraped.text
