"""A JSON webhook receiver on 127.0.0.1 that keeps every POSTed body.

apprise's ``json://127.0.0.1:<port>/path`` posts title, body and attachments
(base64) here, so tests can assert exactly what a webhook channel received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def serve_json_webhook(
    port: int = 0, received: list[dict[str, Any]] | None = None
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Run a receiver on a loopback port; yield (port, received JSON bodies).

    Args:
        port: Port to listen on; 0 picks a free one.
        received: List to append bodies to (to revive a channel that was down).
    """
    bodies: list[dict[str, Any]] = [] if received is None else received

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    thread = threading.Thread(target=server.serve_forever, name="json-webhook", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), bodies
    finally:
        server.shutdown()
        server.server_close()
