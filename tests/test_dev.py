"""`account-deletion dev` as a newcomer meets it: the whole stack from one command.

Runs the real console script in a fresh data folder on free ports, deletes the `clean` demo
account through the operator CLI with the code shown in the dev console, stops with Ctrl-C,
starts again and finds its data.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from service.embedded import installed_binary

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevConsole:
    """What `dev` prints, collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()

    async def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        regex = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                if self.process.returncode is not None:
                    raise AssertionError("dev exited:\n" + "\n".join(self.lines[-40:]))
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.process.wait(), timeout=90)
        await self._reader
        return code


@asynccontextmanager
async def dev(env: dict[str, str]) -> AsyncIterator[DevConsole]:
    process = await asyncio.create_subprocess_exec(
        str(installed_binary("account-deletion")),
        "dev",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    console = DevConsole(process)
    try:
        yield console
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(installed_binary("account-deletion")),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def until_stage(env: dict[str, str], account_id: str, stage: str) -> str:
    async with asyncio.timeout(60):
        while True:
            code, output = await cli(env, "status", account_id)
            if code == 0 and re.search(rf"^stage\s+{stage}$", output, re.M):
                return output
            await asyncio.sleep(0.5)


async def codec_opens_to_the_ui_secret_only(
    http: httpx.AsyncClient, ui_port: int, api: str
) -> None:
    """The UI's codec endpoint holds the secret `dev` made for it; the plain endpoint refuses a
    caller from this machine that sends the UI's Origin without it (any process can)."""
    ui = f"http://127.0.0.1:{ui_port}"
    endpoint = (await http.get(f"{ui}/api/v1/settings")).json()["Codec"]["Endpoint"]
    secret = endpoint.removeprefix(f"{api}/codec/")
    assert len(secret) >= 32 and "/" not in secret, endpoint
    body = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "IngiCg=="}]}
    decoded = await http.post(f"{endpoint}/decode", json=body, headers={"Origin": ui})
    assert decoded.status_code == 200 and decoded.headers["Access-Control-Allow-Origin"] == ui
    forged = await http.post(f"{api}/codec/decode", json=body, headers={"Origin": ui})
    assert forged.status_code == 401


async def test_dev_runs_the_whole_product_and_keeps_its_data(tmp_path: Path) -> None:
    ports = {
        "TEMPORAL_DEV_PORT": free_port(),
        "TEMPORAL_UI_PORT": free_port(),
        "API_PORT": free_port(),
    }
    env = {
        key: value
        for key, value in os.environ.items()
        # What `dev` makes or chooses itself (the suite's own keys may be in the environment).
        if key
        not in (
            "TEMPORAL_ADDRESS",
            "DATABASE_URL",
            "API_TOKEN",
            "NOTIFIER",
            "CODE_HASH_KEY",
            "PAYLOAD_KEYS",
        )
    }
    env.update({key: str(port) for key, port in ports.items()})
    env["DATA_DIR"] = str(tmp_path / "data")

    async with dev(env) as console:
        await console.wait_for(r"account-deletion is running")
        token = (await console.wait_for(r"API token\s+(\S+)")).group(1)
        async with httpx.AsyncClient(timeout=10) as http:
            ui = await http.get(f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}/")
            assert ui.status_code == 200
            api = f"http://127.0.0.1:{ports['API_PORT']}"
            assert (await http.get(f"{api}/docs")).status_code == 200
            unauthorized = await http.get(f"{api}/v1/accounts/x/deletion")
            assert unauthorized.status_code == 401
            await codec_opens_to_the_ui_secret_only(http, ports["TEMPORAL_UI_PORT"], api)
        for name in ("api-token", "payload-keys", "code-hash-key"):
            assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600, name
        code, output = await cli(env, "seed-demo", "--json")
        assert code == 0, output
        demo = json.loads(output)
        assert set(demo) == {"clean", "blocked", "legal_hold", "large"}
        assert json.loads((await cli(env, "seed-demo", "--json"))[1]) == demo

        clean = demo["clean"]
        code, output = await cli(env, "start", clean, "--requested-by", "ops-jane")
        assert code == 0 and "deletion started" in output
        await until_stage(env, clean, "AWAITING_VERIFICATION")
        sent = await console.wait_for(r"\[dev inbox\].*code to confirm .* is (\d{6})")
        code, output = await cli(env, "retry", clean)
        assert code == 1 and "cannot retry the failed purges" in output
        assert (await cli(env, "verify", clean, sent.group(1)))[0] == 0
        await until_stage(env, clean, "DELETED")
        receipt = json.loads((await cli(env, "receipt", clean))[1])
        assert receipt["outcome"] == "DELETED" and receipt["requested_by"] == "ops-jane"
        # The example product's worker, a process of its own, purged the demo archive data.
        (archive,) = [p for p in receipt["products"] if p["product"] == "archive"]
        assert archive["driver"] == "worker" and archive["verified_clean"]
        assert {t["table"]: t["rows"] for t in archive["tables"]} == {
            "archive_access_log": 10,
            "archive_retrieval_jobs": 2,
            "archive_objects": 40,
            "archive_vaults": 2,
        }
        assert (await cli(env, "status", "acct-doesnotexist"))[0] == 3

        assert await console.stop() == 0
        assert any("stopped" in line for line in console.lines)
    assert token == (tmp_path / "data" / "api-token").read_text().strip()

    async with dev(env) as console:
        await console.wait_for(r"account-deletion is running")
        status = await until_stage(env, clean, "DELETED")
        assert "identifiers  released" in status
        again = json.loads((await cli(env, "seed-demo", "--json"))[1])
        assert again["blocked"] == demo["blocked"]
        assert again["clean"] != clean  # the deleted demo account was made anew
        assert await console.stop() == 0
