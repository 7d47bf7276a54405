"""A real `http` product for the tests: its own deletion API on loopback (Starlette on
uvicorn, in this process), with its own state, verifying every request's Standard Webhooks
signature and sending signed callbacks to the real API, served over real HTTP as well.

`ProductApi.mode` says how it answers a deletion request: `callback` (202, then a signed
`completed` callback), `immediate` (200 completed at once), `lost` (202 and a callback that
never arrives: polls answer `pending` `pending_polls` times, then `completed`), `fail` (202,
then a signed `failed` callback).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.webhooks import signature_headers
from tests.support.gateway import new_webhook_secret


@dataclass
class SentCallback:
    url: str
    body: bytes
    headers: dict[str, str]
    status_code: int


@dataclass
class ProductApi:
    name: str = "ledger"
    mode: str = "callback"
    rows: int = 42
    pending_polls: int = 2
    fail_reason: str = "a legal hold on the ledger"
    secret: str = field(default_factory=new_webhook_secret)
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    polls: list[str] = field(default_factory=list)
    """The deletion id of each GET of a status."""
    refused: list[str] = field(default_factory=list)
    """Why each request that did not verify (or replayed an id) was refused."""
    callbacks: list[SentCallback] = field(default_factory=list)
    live: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """The live resources it lists per account."""
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each deletion's status as the product keeps it."""
    _seen: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def _verified(self, request: Request, content: bytes) -> bool:
        headers = dict(request.headers)
        try:
            Webhook(self.secret).verify(content, headers, json_parse=False)
        except (WebhookVerificationError, ValueError) as error:
            self.refused.append(str(error))
            return False
        if headers["webhook-id"] in self._seen:
            self.refused.append("replayed id")
            return False
        self._seen.add(headers["webhook-id"])
        return True

    async def deletions(self, request: Request) -> Response:
        body = await request.body()
        if not self._verified(request, body):
            return Response(status_code=401)
        payload = json.loads(body)
        self.requests.append(payload)
        deletion_id = payload["deletion_id"]
        known = self.state.get(deletion_id)
        if known is not None and known["status"] != "failed":
            return JSONResponse(known)  # the same deletion again: its current status
        if self.mode == "immediate":
            self.state[deletion_id] = {"status": "completed", "rows": self.rows}
            return JSONResponse(self.state[deletion_id])
        self.state[deletion_id] = {"status": "pending", "polls": 0}
        if self.mode in ("callback", "fail"):
            task = asyncio.create_task(self._call_back(deletion_id, payload["callback_url"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Response(status_code=202)

    async def _call_back(self, deletion_id: str, url: str) -> None:
        await asyncio.sleep(0.2)
        if self.mode == "fail":
            result: dict[str, Any] = {"status": "failed", "reason": self.fail_reason}
        else:
            result = {"status": "completed", "rows": self.rows}
        self.state[deletion_id] = result
        body = json.dumps(result)
        headers = signature_headers(
            Webhook(self.secret), f"msg_{len(self.callbacks)}_{id(self)}", body
        )
        async with httpx.AsyncClient() as http:
            response = await http.post(url, content=body, headers=headers)
        self.callbacks.append(SentCallback(url, body.encode(), headers, response.status_code))

    async def status(self, request: Request) -> Response:
        if not self._verified(request, _target(request)):
            return Response(status_code=401)
        deletion_id = request.path_params["deletion_id"]
        self.polls.append(deletion_id)
        known = self.state.get(deletion_id)
        if known is None:
            return Response(status_code=404)
        if known["status"] == "pending":
            known["polls"] += 1
            if known["polls"] > self.pending_polls:
                self.state[deletion_id] = {"status": "completed", "rows": self.rows}
                return JSONResponse(self.state[deletion_id])
            return JSONResponse({"status": "pending"})
        return JSONResponse(known)

    async def live_resources(self, request: Request) -> Response:
        if not self._verified(request, _target(request)):
            return Response(status_code=401)
        return JSONResponse(self.live.get(request.query_params["account_id"], []))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/deletions", self.deletions, methods=["POST"]),
                Route("/deletions/{deletion_id}", self.status, methods=["GET"]),
                Route("/live", self.live_resources, methods=["GET"]),
            ]
        )

    def products_file(self) -> str:
        return (
            f'[[product]]\nname = "{self.name}"\ndriver = "http"\nurl = "{self.url}/deletions"\n'
            f'secret = "{self.secret}"\nlive_resources_url = "{self.url}/live"\n'
        )


def _target(request: Request) -> bytes:
    """What a GET's signature covers: the path and query as sent."""
    path: bytes = request.scope["raw_path"]
    query: bytes = request.scope["query_string"]
    return path + (b"?" + query if query else b"")


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: Any, sock: socket.socket) -> AsyncIterator[str]:
    """Serves the ASGI app over real HTTP on `sock` (uvicorn, in this process)."""
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


@asynccontextmanager
async def running_product(product: ProductApi) -> AsyncIterator[ProductApi]:
    sock = free_socket()
    async with serving(product.app(), sock) as url:
        product.url = url
        yield product
        for task in list(product._tasks):
            await task
