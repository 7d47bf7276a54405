"""A real HTTP receiver of the console backend's stage events, on loopback, as the console
backend would run one: it verifies each request's Standard Webhooks signature with the
`standardwebhooks` package, refuses (401) one that does not verify, and drops duplicates by
`webhook-id`. It can be down (its port closed) and come back on the same port, or lose its
answers after recording (so that the sender retries what was received)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.gateway import new_webhook_secret


class Receiver:
    def __init__(self) -> None:
        self.secret = new_webhook_secret()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        """Every request that verified, duplicates included, in arrival order."""
        self.events: list[dict[str, Any]] = []
        """Each event once (deduplicated by `webhook-id`), in arrival order."""
        self.seen_ids: set[str] = set()
        self.rejected = 0
        self.lose_answers = 0
        """Record this many events, then answer 500 as if the answer were lost on the way."""
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def up(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Closes the port: the sender sees its connection refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events_of(self, workflow_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [event for event in self.events if event["workflow_id"] == workflow_id]

    async def wait_for(self, done: Callable[[Receiver], bool], *, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while not done(self):
                await asyncio.sleep(0.05)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                except (WebhookVerificationError, ValueError):
                    with receiver.lock:
                        receiver.rejected += 1
                    self._answer(401)
                    return
                with receiver.lock:
                    receiver.requests.append((headers, body))
                    if headers["webhook-id"] not in receiver.seen_ids:
                        receiver.seen_ids.add(headers["webhook-id"])
                        receiver.events.append(json.loads(body))
                    lost = receiver.lose_answers > 0
                    receiver.lose_answers -= int(lost)
                self._answer(500 if lost else 204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.up()
    try:
        yield receiver
    finally:
        receiver.down()
