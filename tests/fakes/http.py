"""One loopback HTTP server under every fake remote service (STAC, DHuS, Planet, Slack, webhooks).

A fake subclasses :class:`FakeHttpServer`, lists its :class:`Route` s and answers each
request with a :class:`Response`; what every fake needs lives here once:

- a threaded ``http.server`` on 127.0.0.1 (port 0: a free one), used as a context
  manager, HTTP/1.1 with ``Content-Length`` on every answer, HEAD answered like GET
  without the body;
- the request log (:attr:`FakeHttpServer.requests`, each with its route name, the
  status sent and the body bytes sent), in arrival order;
- injected faults (:meth:`FakeHttpServer.inject`): an HTTP status, ``"drop"`` (the
  whole body announced, half of it sent, the connection closed) or ``"corrupt"`` (the
  first byte flipped, the headers, digests included, unchanged), on a route, a method,
  a path or a served file name, once, a number of times or until cleared;
- byte ranges (:func:`ranged_response`: ``bytes=a-b``, ``a-`` and ``-n``; 206/416).

A fake refuses credentials by overriding :meth:`FakeHttpServer.refuse` and words its
error bodies by overriding :meth:`FakeHttpServer.error`, as its real service does.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, unquote, urlsplit

Fault = int | Literal["drop", "corrupt"]
"""An injected fault: an HTTP status to answer with, ``"drop"`` or ``"corrupt"``."""

BODY_FAULTS = ("drop", "corrupt")
"""Faults applied to a response body (taken only by answers that carry one)."""


@dataclass
class RecordedRequest:
    """One request a fake received (logged on arrival, before credentials are checked).

    Attributes:
        method: HTTP method.
        path: URL path, percent-decoded.
        query: Query parameters (the last value of each).
        query_string: The raw query string.
        headers: Request headers, names lower-cased.
        body: Raw request body.
        route: Name of the route that served it (``"unknown"`` if none matched).
        status: Status code sent (0 until answered).
        body_bytes: Body bytes sent (half the announced body for a dropped one).
        dropped: Whether the connection was closed half-way through the body.
    """

    method: str
    path: str
    query: dict[str, str]
    query_string: str
    headers: dict[str, str]
    body: bytes
    route: str
    status: int = 0
    body_bytes: int = 0
    dropped: bool = False

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """An answer: status, body, content type ("" for none), extra headers.

    ``file_name`` names the file the body is, so a fault can target one file.
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    file_name: str = ""


def json_response(
    payload: Any,
    status: int = 200,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``payload`` as a JSON answer."""
    return Response(status, json.dumps(payload).encode(), content_type, headers or {})


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def ranged_response(
    request: RecordedRequest,
    data: bytes,
    content_type: str,
    *,
    headers: Mapping[str, str] | None = None,
    file_name: str = "",
) -> Response:
    """``data``, or the part of it the ``Range`` header asks for (206; 416 past the end).

    One range only; a multi-range request gets its first range, which GDAL accepts.
    """
    size = len(data)
    extra = {"Accept-Ranges": "bytes", **(headers or {})}
    match = _RANGE.match(request.headers.get("range", ""))
    if match is None:
        return Response(200, data, content_type, extra, file_name)
    first_text, last_text = match.groups()
    if first_text == "":  # a suffix range: the last N bytes
        first, last = max(0, size - int(last_text)), size - 1
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size:
        return Response(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
    extra["Content-Range"] = f"bytes {first}-{last}/{size}"
    return Response(206, data[first : last + 1], content_type, extra, file_name)


RouteHandler = Callable[[RecordedRequest, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    """Requests with one of ``methods`` whose path fully matches ``pattern`` go to ``handler``.

    GET routes answer HEAD too. Paths are matched percent-decoded, without a trailing ``/``.
    """

    name: str
    methods: tuple[str, ...]
    pattern: str
    handler: RouteHandler

    def match(self, method: str, path: str) -> re.Match[str] | None:
        """The pattern's match if this route serves ``method`` on ``path``."""
        methods = (*self.methods, "HEAD") if "GET" in self.methods else self.methods
        return re.fullmatch(self.pattern, path) if method in methods else None


@dataclass
class _InjectedFault:
    fault: Fault
    route: str | None
    method: str | None
    contains: str
    remaining: int | None

    def hits(self, request: RecordedRequest, file_name: str) -> bool:
        return (
            self.remaining != 0
            and self.route in (None, request.route)
            and self.method in (None, request.method)
            and (self.contains in request.path or (bool(file_name) and self.contains in file_name))
        )


class FakeHttpServer(ABC):
    """A fake remote service on 127.0.0.1; use it as a context manager.

    Subclasses implement :meth:`routes` and may override :meth:`refuse`, :meth:`error`,
    :meth:`not_found` and :meth:`dispatch`.
    """

    server_header = "FakeHttpServer"
    """The ``Server`` header of every answer."""

    def __init__(self) -> None:
        """Create the server (not started)."""
        self.requests: list[RecordedRequest] = []
        self._faults: list[_InjectedFault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._root_url = ""
        self._routes: Sequence[Route] = ()

    # ---- what a fake defines ---------------------------------------------------------
    @abstractmethod
    def routes(self) -> Sequence[Route]:
        """The fake's routes, tried in order."""

    def refuse(self, request: RecordedRequest) -> Response | None:
        """The answer to a request without valid credentials; None lets it through."""
        return None

    def error(self, status: int) -> Response:
        """The answer an injected HTTP ``status`` gets."""
        return json_response({"message": f"injected HTTP {status}"}, status)

    def not_found(self, request: RecordedRequest) -> Response:
        """The answer to a path no route serves."""
        return json_response({"message": f"not found: {request.path}"}, 404)

    def dispatch(self, route: Route, request: RecordedRequest, match: re.Match[str]) -> Response:
        """Answer a routed request (override to turn a fake's exceptions into answers)."""
        return route.handler(request, match)

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>`` (kept after the server stopped, for unreachable tests)."""
        if not self._root_url:
            raise RuntimeError(f"{type(self).__name__} was never started; use it in a `with` block")
        return self._root_url

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.root_url.rsplit(":", 1)[1])

    def start(self, port: int = 0) -> None:
        """Listen on ``port`` of 127.0.0.1 (0: a free one) in a daemon thread."""
        self._routes = tuple(self.routes())
        fake = self

        class Handler(_Handler):
            server_version = self.server_header
            owner = fake

        self._httpd = _Server(("127.0.0.1", port), Handler)
        host, bound = self._httpd.server_address[:2]
        self._root_url = f"http://{host!s}:{bound}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- faults and the log ----------------------------------------------------------
    def inject(
        self,
        fault: Fault,
        *,
        route: str | None = None,
        method: str | None = None,
        contains: str = "",
        times: int | None = 1,
    ) -> None:
        """Answer matching requests with ``fault``.

        Args:
            fault: An HTTP status (500, 401, 429, 404, ...), ``"drop"`` or ``"corrupt"``.
            route: Only requests to this route (its name).
            method: Only requests with this method.
            contains: Only requests whose path, or the name of the file served,
                contains this.
            times: How many requests it hits; None: every one until cleared.
        """
        with self._lock:
            self._faults.append(_InjectedFault(fault, route, method, contains, times))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """The logged requests to one route, in order."""
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def clear_log(self) -> None:
        """Forget the requests logged so far."""
        with self._lock:
            self.requests.clear()

    def _take_fault(
        self, request: RecordedRequest, *, on_body: bool, file_name: str = ""
    ) -> Fault | None:
        """The first matching fault of the kind asked for (counted down), if any."""
        with self._lock:
            for injected in self._faults:
                is_body_fault = injected.fault in BODY_FAULTS
                if is_body_fault == on_body and injected.hits(request, file_name):
                    if injected.remaining is not None:
                        injected.remaining -= 1
                    return injected.fault
        return None

    # ---- one request -----------------------------------------------------------------
    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        path = unquote(url.path).rstrip("/") or "/"
        length = int(handler.headers.get("Content-Length") or 0)
        route, match = self._route(method, path)
        request = RecordedRequest(
            method=method,
            path=unquote(url.path),
            query={key: values[-1] for key, values in parse_qs(url.query).items()},
            query_string=url.query,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
            route=route.name if route else "unknown",
        )
        with self._lock:
            self.requests.append(request)
        response = self.refuse(request)
        if response is None:
            fault = self._take_fault(request, on_body=False)
            if isinstance(fault, int):
                response = self.error(fault)
            elif route is None or match is None:
                response = self.not_found(request)
            else:
                response = self.dispatch(route, request, match)
        self._send(handler, request, response)

    def _route(self, method: str, path: str) -> tuple[Route | None, re.Match[str] | None]:
        for route in self._routes:
            match = route.match(method, path)
            if match is not None:
                return route, match
        return None, None

    def _send(
        self, handler: BaseHTTPRequestHandler, request: RecordedRequest, response: Response
    ) -> None:
        body = response.body
        fault = None
        if body and request.method != "HEAD":
            fault = self._take_fault(request, on_body=True, file_name=response.file_name)
        if fault == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        sent = b"" if request.method == "HEAD" else body
        if fault == "drop":
            sent = body[: max(1, len(body) // 2)]
        # Logged before the answer leaves, so a client that raises on it (and a test
        # that then reads the log) never races the logging.
        request.status, request.body_bytes, request.dropped = (
            response.status,
            len(sent),
            fault == "drop",
        )
        handler.send_response(response.status)
        if response.content_type:
            handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if sent:
            handler.wfile.write(sent)
        if fault == "drop":
            handler.wfile.flush()
            handler.close_connection = True


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the :class:`FakeHttpServer` that owns the server."""

    protocol_version = "HTTP/1.1"
    owner: FakeHttpServer

    def handle(self) -> None:
        """Serve the connection; a client hanging up early is normal (GDAL does)."""
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the fake keeps its own log."""

    def do_GET(self) -> None:
        """Answer a GET."""
        self.owner._answer(self, "GET")

    def do_HEAD(self) -> None:
        """Answer a HEAD like a GET, without the body."""
        self.owner._answer(self, "HEAD")

    def do_POST(self) -> None:
        """Answer a POST."""
        self.owner._answer(self, "POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer is part of the tests; stay quiet."""
