"""A real HTTP gateway on loopback that records what the webhook notifier POSTs to it: the
inbox of a worker process (`NOTIFIER=webhook`, `NOTIFY_WEBHOOK_URL=gateway.url`,
`NOTIFY_WEBHOOK_SECRET=gateway.secret`).

It verifies every request's Standard Webhooks signature with the `standardwebhooks` package (as
a real gateway would) and answers 401 to one that does not verify, without recording it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.inbox import CODE


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Gateway:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        """The headers of each request in `received`."""
        self.rejected: list[str] = []
        """Why each request that did not verify was refused."""
        self.failures_left = 0
        """Answer this many requests with 503 first, as a gateway having a bad minute."""
        self.secret = new_webhook_secret()
        """The NOTIFY_WEBHOOK_SECRET its senders sign with."""
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
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    Webhook(gateway.secret).verify(body, headers)
                except (WebhookVerificationError, ValueError) as error:
                    with gateway._lock:
                        gateway.rejected.append(str(error) or type(error).__name__)
                    self._answer(401)
                    return
                with gateway._lock:
                    failing = gateway.failures_left > 0
                    if failing:
                        gateway.failures_left -= 1
                    else:
                        gateway.received.append(json.loads(body))
                        gateway.headers.append(headers)
                self._answer(503 if failing else 202)

            def _answer(self, status: int) -> None:
                self.send_response(status)
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
