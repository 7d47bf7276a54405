"""The `http` driver's cost per deletion: the latency from the code accepted to the identifiers
released with one `http` product that answers `200 completed` at once, and with one that
answers `202` and calls back (signed, to the API served over real HTTP), against the same saga
without it, measured in the same run, one deletion at a time, the three interleaved.

The product (`BenchProduct`) verifies each signature as a real one would and answers at once:
what is measured is the driver (signing, two round trips or three, the sealed token, the
callback's verification, its record and the async completion), not a product's work.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks.harness import Report, median, percentile, saga_worker
from benchmarks.latency import CodeBox
from benchmarks.latency import Size as LatencySize
from benchmarks.latency import _saga_once as saga_once  # the latency benchmark's one deletion
from benchmarks.stack import Stack, new_code_hash_key
from core.webhooks import signature_headers

TARGET_MS = 150.0
"""The 202-and-callback driver adds at most this to a deletion's latency (p50)."""
MODES = ("none", "200", "202")


@dataclass(frozen=True)
class Size:
    deletions: int
    rows_per_product: int


SIZES = {
    "tiny": Size(deletions=1, rows_per_product=5),
    "full": Size(deletions=30, rows_per_product=100),
}


class BenchProduct:
    """A product's deletion API at its fastest: `200 completed`, or `202` then a callback."""

    def __init__(self, mode: str, secret: str) -> None:
        self.mode = mode
        self.secret = secret
        self.callbacks = 0
        self.http = httpx.AsyncClient()

    async def deletions(self, request: Request) -> Response:
        body = await request.body()
        Webhook(self.secret).verify(body, dict(request.headers), json_parse=False)
        payload = json.loads(body)
        if self.mode == "200":
            return JSONResponse({"status": "completed", "rows": 7})
        return Response(status_code=202, background=BackgroundTask(self._call_back, payload))

    async def _call_back(self, payload: dict[str, str]) -> None:
        body = json.dumps({"status": "completed", "rows": 7})
        headers = signature_headers(
            Webhook(self.secret), f"msg_{payload['deletion_id']}_{self.callbacks}", body
        )
        self.callbacks += 1
        response = await self.http.post(payload["callback_url"], content=body, headers=headers)
        response.raise_for_status()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/deletions", self.deletions, methods=["POST"])])


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def run(stack: Stack, size: Size) -> Report:
    from service.api import create_app

    secret = "whsec_" + new_code_hash_key().split(":", 1)[1]
    timings: dict[str, list[float]] = {mode: [] for mode in MODES}
    async with AsyncExitStack() as exits:
        folder = Path(exits.enter_context(tempfile.TemporaryDirectory()))
        api_sock = socket.socket()
        api_sock.bind(("127.0.0.1", 0))
        api_url = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
        stacks: dict[str, Stack] = {}
        boxes: dict[str, CodeBox] = {}
        declared = ""
        for mode in MODES:
            update: dict[str, object] = {
                "temporal_task_queue": f"{stack.settings.temporal_task_queue}-http-{mode}",
                "public_base_url": api_url,
                "api_token": "benchmark",
            }
            if mode != "none":
                product = BenchProduct(mode, secret)
                exits.push_async_callback(product.http.aclose)
                url = await exits.enter_async_context(serving(product.app()))
                entry = (
                    f'[[product]]\nname = "bench_{mode}"\ndriver = "http"\n'
                    f'url = "{url}/deletions"\nsecret = "{secret}"\n'
                )
                declared += entry
                (folder / f"{mode}.toml").write_text(entry)
                update["products_file"] = folder / f"{mode}.toml"
            stacks[mode] = replace(stack, settings=stack.settings.model_copy(update=update))
            boxes[mode] = CodeBox()
            await exits.enter_async_context(saga_worker(stacks[mode], boxes[mode].relay))
        (folder / "all.toml").write_text(declared)
        api_settings = stack.settings.model_copy(
            update={"products_file": folder / "all.toml", "api_token": "benchmark"}
        )
        app = create_app(api_settings, pool=stack.pool, client=stack.client)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        serve = asyncio.create_task(server.serve(sockets=[api_sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            latency_size = LatencySize(size.deletions, size.rows_per_product)
            for _ in range(size.deletions):
                for mode in MODES:
                    timings[mode].append(await saga_once(stacks[mode], boxes[mode], latency_size))
        finally:
            server.should_exit = True
            await serve
    return _report(timings, size)


def _report(timings: dict[str, list[float]], size: Size) -> Report:
    report = Report(
        "http",
        columns=["http product", "deletions", "p50 ms", "p95 ms", "p50 - none ms"],
        target=f"202+callback adds <= {TARGET_MS:.0f} ms (p50)",
    )
    p50 = {mode: median(values) * 1000 for mode, values in timings.items()}
    for mode, values in timings.items():
        ms = [v * 1000 for v in values]
        report.rows.append(
            [mode, len(ms), p50[mode], percentile(ms, 0.95), p50[mode] - p50["none"]]
        )
    report.ratio = p50["202"] / p50["none"]
    report.met = p50["202"] - p50["none"] <= TARGET_MS
    report.figures = {
        "deletions": size.deletions,
        **{f"p50_ms_{mode}": round(p50[mode], 1) for mode in MODES},
        **{f"p95_ms_{mode}": round(percentile(timings[mode], 0.95) * 1000, 1) for mode in MODES},
        "added_p50_ms_200": round(p50["200"] - p50["none"], 1),
        "added_p50_ms_202": round(p50["202"] - p50["none"], 1),
    }
    report.notes.append(
        "verification accepted -> identifiers released; ratio = p50 with 202+callback / p50 none"
    )
    return report
