"""A JSON webhook receiver on 127.0.0.1 that keeps every POSTed body.

apprise's ``json://127.0.0.1:<port>/path`` posts title, body and attachments
(base64) here, so tests can assert exactly what a webhook channel received.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fakes.http import FakeHttpServer, RecordedRequest, Response, Route


class JsonWebhook(FakeHttpServer):
    """Answers every POST with 200 and keeps its JSON body in :attr:`bodies`."""

    def __init__(self, received: list[dict[str, Any]] | None = None) -> None:
        """Append bodies to ``received`` (a new list if None)."""
        super().__init__()
        self.bodies: list[dict[str, Any]] = [] if received is None else received

    def routes(self) -> list[Route]:
        """Any path takes a POST."""
        return [Route("post", ("POST",), "/.*", self._keep)]

    def _keep(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        self.bodies.append(request.json())
        return Response(200, content_type="")


@contextmanager
def serve_json_webhook(
    port: int = 0, received: list[dict[str, Any]] | None = None
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Run a receiver on a loopback port; yield (port, received JSON bodies).

    Args:
        port: Port to listen on; 0 picks a free one.
        received: List to append bodies to (to revive a channel that was down).
    """
    webhook = JsonWebhook(received)
    webhook.start(port)
    try:
        yield webhook.port, webhook.bodies
    finally:
        webhook.stop()
