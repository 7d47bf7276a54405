"""The worker and API processes as deployed: configured by environment, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httpx
import pytest
from temporalio.client import Client

from starter.embedded import installed_binary
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
