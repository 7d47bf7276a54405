"""A real HTTP gateway on loopback that records what the webhook notifier POSTs to it: the
inbox of a worker process (`NOTIFIER=webhook`, `NOTIFY_WEBHOOK_URL=gateway.url`)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.inbox import CODE


class Gateway:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures_left = 0
        """Answer this many requests with 503 first, as a gateway having a bad minute."""
        self._lock = threading.Lock()
        self.url = ""

    def codes_for(self, account_id: str) -> list[str]:
        with self._lock:
            bodies = [m["body"] for m in self.received if m["account_id"] == account_id]
        return [match.group(1) for body in bodies if (match := CODE.search(body))]

    async def only_code_for(self, account_id: str, *, timeout: float = 60) -> str:
        """Waits for the account's code to arrive; fails unless exactly one did."""
        async with asyncio.timeout(timeout):
            while not self.codes_for(account_id):
                await asyncio.sleep(0.1)
        [code] = self.codes_for(account_id)
        return code

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                with gateway._lock:
                    failing = gateway.failures_left > 0
                    if failing:
                        gateway.failures_left -= 1
                    else:
                        gateway.received.append(payload)
                self.send_response(503 if failing else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def running_gateway() -> Iterator[Gateway]:
    gateway = Gateway()
    server = ThreadingHTTPServer(("127.0.0.1", 0), gateway._handler())
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/messages"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
