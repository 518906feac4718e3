"""A fake Slack on 127.0.0.1: incoming webhooks and the bot API's file upload.

apprise's Slack plugin posts to fixed slack.com hosts; tests point its class
attributes (``webhook_url``, ``api_url``) here, so the real plugin code sends real
HTTP requests and the test reads what Slack would have received: the message
payloads and the uploaded files' bytes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class SlackInbox:
    """What the fake Slack received.

    Attributes:
        messages: JSON payloads of webhook posts and ``chat.postMessage`` calls.
        files: Uploaded files by name (bytes as sent; multipart bodies included).
        shared: ``files.completeUploadExternal`` payloads (files shared to a channel).
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    shared: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def serve_slack() -> Iterator[tuple[str, SlackInbox]]:
    """Run the fake; yield (its base URL, inbox)."""
    inbox = SlackInbox()
    pending_names: dict[str, str] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path.endswith("/files.getUploadURLExternal"):
                name = parse_qs(parts.query)["filename"][0]
                with lock:
                    file_id = f"F{len(pending_names) + 1:04d}"
                    pending_names[file_id] = name
                port = int(self.headers["Host"].rsplit(":", 1)[-1])
                upload = f"http://127.0.0.1:{port}/upload/{file_id}"
                self._reply(
                    json.dumps({"ok": True, "file_id": file_id, "upload_url": upload}).encode()
                )
                return
            self.send_error(404)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            path = urlsplit(self.path).path
            if path.startswith("/upload/"):
                with lock:
                    inbox.files[pending_names[path.rsplit("/", 1)[-1]]] = body
                self._reply(f"OK - {len(body)}".encode(), "text/plain")
            elif path.endswith("/files.completeUploadExternal"):
                payload = json.loads(body)
                inbox.shared.append(payload)
                self._reply(json.dumps({"ok": True, "files": payload["files"]}).encode())
            elif path.endswith("/chat.postMessage"):
                payload = json.loads(body)
                inbox.messages.append(payload)
                reply = {"ok": True, "channel": "C0MINING", "ts": "1700000000.000100"}
                self._reply(json.dumps(reply).encode())
            elif path.startswith("/services/"):
                inbox.messages.append(json.loads(body))
                self._reply(b"ok", "text/plain")
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-slack", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", inbox
    finally:
        server.shutdown()
        server.server_close()
