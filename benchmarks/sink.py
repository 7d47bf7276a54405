"""A notification gateway that accepts every message and keeps none: the inbox of the
`python worker.py` a benchmark starts (a worker outside `dev` refuses the log notifier)."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def message_sink() -> Iterator[dict[str, str]]:
    """Runs the sink on loopback; yields the worker environment that delivers to it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "NOTIFIER": "webhook",
            "NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/messages",
            "NOTIFY_WEBHOOK_SECRET": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
        }
    finally:
        server.shutdown()
        server.server_close()
