"""A fake Slack on 127.0.0.1: incoming webhooks and the bot API's file upload.

apprise's Slack plugin posts to fixed slack.com hosts; tests point its class
attributes (``webhook_url``, ``api_url``) here, so the real plugin code sends real
HTTP requests and the test reads what Slack would have received: the message
payloads and the uploaded files' bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fakes.http import FakeHttpServer, RecordedRequest, Response, Route, json_response


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


class FakeSlack(FakeHttpServer):
    """Slack's webhook, ``chat.postMessage`` and external file upload; fills :attr:`inbox`."""

    def __init__(self) -> None:
        """An empty inbox (not started)."""
        super().__init__()
        self.inbox = SlackInbox()
        self._pending_names: dict[str, str] = {}

    def routes(self) -> list[Route]:
        """The Web API methods apprise calls, the upload URL and incoming webhooks."""
        return [
            Route("upload-url", ("GET",), r".*/files\.getUploadURLExternal", self._upload_url),
            Route("upload", ("POST",), "/upload/([^/]+)", self._upload),
            Route("complete-upload", ("POST",), r".*/files\.completeUploadExternal", self._share),
            Route("post-message", ("POST",), r".*/chat\.postMessage", self._post_message),
            Route("webhook", ("POST",), "/services/.*", self._webhook),
        ]

    def _upload_url(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        with self._lock:
            file_id = f"F{len(self._pending_names) + 1:04d}"
            self._pending_names[file_id] = request.query["filename"]
        upload = f"{self.root_url}/upload/{file_id}"
        return json_response({"ok": True, "file_id": file_id, "upload_url": upload})

    def _upload(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        with self._lock:
            self.inbox.files[self._pending_names[match.group(1)]] = request.body
        return Response(200, f"OK - {len(request.body)}".encode(), "text/plain")

    def _share(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        payload = request.json()
        self.inbox.shared.append(payload)
        return json_response({"ok": True, "files": payload["files"]})

    def _post_message(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        self.inbox.messages.append(request.json())
        return json_response({"ok": True, "channel": "C0MINING", "ts": "1700000000.000100"})

    def _webhook(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        self.inbox.messages.append(json.loads(request.body))
        return Response(200, b"ok", "text/plain")


@contextmanager
def serve_slack() -> Iterator[tuple[str, SlackInbox]]:
    """Run the fake; yield (its base URL, inbox)."""
    with FakeSlack() as slack:
        yield slack.root_url, slack.inbox
