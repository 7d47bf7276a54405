"""The worker and API processes as deployed: configured by environment, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import importlib
import importlib.machinery
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from core.codec import PayloadKey
from service.embedded import installed_binary
from tests.support import REPO_ROOT, TEST_CODE_HASH_KEY
from tests.support.gateway import new_webhook_secret
from worker import cache_bytecode

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


IDLE_WEBHOOK = {
    "NOTIFIER": "webhook",
    "NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/never-called",
    "NOTIFY_WEBHOOK_SECRET": new_webhook_secret(),
}
"""A gateway for a worker that sends nothing: the product worker needs one to start."""


async def read_until(process: asyncio.subprocess.Process, text: str, timeout: float = 60) -> str:
    assert process.stdout is not None
    seen = []
    async with asyncio.timeout(timeout):
        async for raw in process.stdout:
            seen.append(raw.decode(errors="replace"))
            if text in seen[-1]:
                return "".join(seen)
    raise AssertionError(f"process ended before printing {text!r}:\n{''.join(seen)}")


async def test_the_worker_stops_cleanly_on_sigterm(
    client: Client, database_url: str, task_queue: str
) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATABASE_URL": database_url,
        **IDLE_WEBHOOK,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await read_until(process, f"worker polling task queue {task_queue}")
    process.send_signal(signal.SIGTERM)
    output = await read_until(process, "worker stopped", timeout=45)
    assert await asyncio.wait_for(process.wait(), 15) == 0
    assert "Traceback" not in output


async def test_the_api_serves_until_sigterm(
    client: Client, database_url: str, task_queue: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATABASE_URL": database_url,
        "API_TOKEN": "process-test-token-123",
    }
    process = await asyncio.create_subprocess_exec(
        str(installed_binary("account-deletion")),
        "api",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async with asyncio.timeout(30):
                while True:
                    try:
                        health = await http.get("/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.2)
            assert health.json() == {"status": "ok"}
            created = await http.post(
                "/v1/accounts",
                json={"user_name": "proc", "email": "proc@example.com", "phone": "+14155550177"},
                headers={"Authorization": "Bearer process-test-token-123"},
            )
            assert created.status_code == 201
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_api_refuses_to_start_without_a_token(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "API_TOKEN"}
    env.update({"DATABASE_URL": database_url, "DATA_DIR": "/nonexistent-data-dir"})
    process = await asyncio.create_subprocess_exec(
        str(installed_binary("account-deletion")),
        "api",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 2
    assert b"API_TOKEN is not set" in output


WORKER_COMMANDS = {
    "python worker.py": [sys.executable, str(REPO_ROOT / "worker.py")],
    "account-deletion worker": [str(installed_binary("account-deletion")), "worker"],
}


async def refusal(argv: list[str], **changes: str | None) -> str:
    """Runs a worker entry point on unreachable servers with the environment `changes` made
    (None removes a variable); it must refuse at start: exit 2, one line, no traceback."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "CODE_HASH_KEY": TEST_CODE_HASH_KEY,
        "DATA_DIR": "/nonexistent-data-dir",
        **IDLE_WEBHOOK,
    }
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode()
    assert process.returncode == 2, text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    return text


@pytest.mark.parametrize("entry", WORKER_COMMANDS)
@pytest.mark.parametrize("notifier", [None, "log"])
async def test_the_product_worker_refuses_the_log_notifier_in_one_line(
    entry: str, notifier: str | None
) -> None:
    """`log` writes every code to the log: only `dev` may use it (tests/test_dev.py)."""
    line = await refusal(WORKER_COMMANDS[entry], NOTIFIER=notifier)
    assert "NOTIFIER" in line and "NOTIFIER=webhook" in line


@pytest.mark.parametrize("entry", WORKER_COMMANDS)
async def test_the_product_worker_refuses_to_start_without_code_hash_key(entry: str) -> None:
    line = await refusal(WORKER_COMMANDS[entry], CODE_HASH_KEY=None)
    assert "CODE_HASH_KEY is not set" in line
    line = await refusal(WORKER_COMMANDS[entry], CODE_HASH_KEY="k1:tooshort")
    assert "CODE_HASH_KEY" in line and "tooshort" not in line


async def test_the_product_worker_refuses_a_malformed_webhook_secret() -> None:
    line = await refusal(WORKER_COMMANDS["python worker.py"], NOTIFY_WEBHOOK_SECRET="hunter2")
    assert "NOTIFY_WEBHOOK_SECRET must be whsec_" in line and "hunter2" not in line


WORKFLOW_SOURCE = """
from temporalio import workflow


@workflow.defn
class Probe:
    @workflow.run
    async def run(self) -> None:
        return None
"""


@pytest.fixture
def probe_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[type, Path]]:
    """A workflow module imported from its source, by an interpreter that writes no bytecode."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "bytecode_probe_workflow.py"
    source.write_text(WORKFLOW_SOURCE)
    module = importlib.import_module("bytecode_probe_workflow")
    try:
        yield module.Probe, source
    finally:
        del sys.modules["bytecode_probe_workflow"]


def test_the_worker_caches_the_bytecode_the_sandbox_imports_for_every_run(
    probe_workflow: tuple[type, Path],
) -> None:
    """Without it, each run the worker starts compiles the workflow module again."""
    workflow_class, source = probe_workflow
    cached = Path(importlib.util.cache_from_source(str(source)))
    assert not cached.exists(), "the interpreter wrote bytecode itself"

    cache_bytecode(workflow_class)

    assert cached.exists()
    loader = importlib.machinery.SourceFileLoader("bytecode_probe_workflow", str(source))
    assert loader.get_code("bytecode_probe_workflow") is not None


def test_a_bytecode_cache_it_cannot_write_does_not_stop_the_worker(
    probe_workflow: tuple[type, Path],
) -> None:
    workflow_class, source = probe_workflow
    cache = Path(importlib.util.cache_from_source(str(source))).parent
    cache.write_text("a file where the bytecode directory would be (read-only for root too)")

    cache_bytecode(workflow_class)

    assert cache.is_file()


BAD_CONFIG = [
    pytest.param({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE", id="pool size out of range"),
    pytest.param(
        {"PAYLOAD_KEYS": "k1:not-base64-secret!"}, "PAYLOAD_KEYS", id="malformed payload keys"
    ),
    pytest.param({"NOTIFIER": "carrier-pigeon"}, "NOTIFIER", id="unknown notifier"),
    pytest.param({"NOTIFY_WEBHOOK_URL": ""}, "NOTIFY_WEBHOOK_URL", id="webhook without its url"),
]
PROCESSES = {
    "worker": [sys.executable, str(REPO_ROOT / "worker.py")],
    "account-deletion worker": [str(installed_binary("account-deletion")), "worker"],
    "account-deletion api": [str(installed_binary("account-deletion")), "api", "--port", "1"],
    "account-deletion status": [str(installed_binary("account-deletion")), "status", "acct-x"],
}


@pytest.mark.parametrize("process_name", list(PROCESSES))
@pytest.mark.parametrize(("bad", "named"), BAD_CONFIG)
async def test_a_configuration_error_is_one_line_without_a_traceback(
    client: Client,
    database_url: str,
    task_queue: str,
    process_name: str,
    bad: dict[str, str],
    named: str,
) -> None:
    if named == "NOTIFY_WEBHOOK_URL" and process_name.endswith(("api", "status")):
        pytest.skip("only the worker notifies")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("NOTIFIER", "NOTIFY_WEBHOOK_URL", "API_TOKEN")
    }
    env.setdefault("PAYLOAD_KEYS", PayloadKey.generate("k1").entry())
    # Everything else a product worker needs, so that the one bad setting is what it names.
    env.update(
        NOTIFIER="webhook",
        NOTIFY_WEBHOOK_URL="http://127.0.0.1:1/notify",
        NOTIFY_WEBHOOK_SECRET="whsec_" + base64.b64encode(b"s" * 32).decode(),
        CODE_HASH_KEY=PayloadKey.generate("c1").entry(),
    )
    env.update(
        TEMPORAL_ADDRESS=client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=task_queue,
        DATABASE_URL=database_url,
        API_TOKEN="process-test-token-123",
        WORKER_METRICS_ADDRESS="off",
        DATA_DIR="/nonexistent-data-dir",
        **bad,
    )
    process = await asyncio.create_subprocess_exec(
        *PROCESSES[process_name],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = err.decode()
    where = f"{process_name} with {bad}: exit {process.returncode}\n{out!r}\n{text}"
    assert process.returncode == 2, where
    assert "Traceback" not in text and out == b"", where
    assert len(text.strip().splitlines()) == 1, where
    assert named in text, where
    assert "not-base64-secret" not in text, where
