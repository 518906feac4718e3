"""What keeps the review web app safe: the write token, CSRF tokens, response headers.

Writes (confirm / dismiss) need the token configured by ``ASMSPOTTER_WEB_TOKEN`` or
a Prefect Secret block (``ASMSPOTTER_WEB_TOKEN_SECRET``); with neither the app is
read-only. Forms also carry a CSRF token that must equal the ``asmspotter_csrf``
cookie (double submit; the cookie is ``SameSite=Strict``), and a cross-origin
``Origin`` header is refused, and a client that keeps sending wrong tokens is
slowed down (:class:`TokenFailureLimiter`). :mod:`asmspotter.web.app` uses these;
they hold no FastAPI state so they test on their own.
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from asmspotter.errors import AsmspotterError

CSRF_COOKIE = "asmspotter_csrf"
"""Cookie holding the CSRF token the forms repeat."""

CSRF_FIELD = "csrf_token"
"""Form field holding the CSRF token."""

TOKEN_FIELD = "token"
"""Form field holding the write token."""

MIN_TOKEN_CHARS = 12
"""Shortest write token accepted: a guessable token would make the check pointless."""


class WebConfigError(AsmspotterError, ValueError):
    """The web app's settings cannot be used (token too short, Secret block missing)."""


def load_secret_block(name: str) -> str:
    """Read a Prefect Secret block's value (Prefect is imported only here).

    Raises:
        WebConfigError: The block cannot be loaded.
    """
    try:
        from prefect.blocks.system import Secret

        block: Any = Secret.load(name)
        return str(block.get())
    except Exception as exc:
        raise WebConfigError(
            f"ASMSPOTTER_WEB_TOKEN_SECRET names the Prefect Secret block {name!r}, which "
            f"could not be loaded ({type(exc).__name__}); create it (prefect block create "
            "secret) or set ASMSPOTTER_WEB_TOKEN instead, and check PREFECT_API_URL."
        ) from exc


def resolve_write_token(token: str | None, secret_block: str | None) -> str | None:
    """The write token from the environment value or the Secret block; None = read-only.

    Args:
        token: Value of ``ASMSPOTTER_WEB_TOKEN`` (wins when both are set).
        secret_block: Name of a Prefect Secret block holding the token.

    Raises:
        WebConfigError: The token is shorter than :data:`MIN_TOKEN_CHARS` or the block
            cannot be loaded.
    """
    value = token if token else (load_secret_block(secret_block) if secret_block else None)
    if value is None:
        return None
    if len(value) < MIN_TOKEN_CHARS:
        source = "ASMSPOTTER_WEB_TOKEN" if token else f"Secret block {secret_block!r}"
        raise WebConfigError(
            f"{source}: the web write token has {len(value)} characters, at least "
            f"{MIN_TOKEN_CHARS} are needed; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`."
        )
    return value


def is_token_valid(given: str | None, expected: str | None) -> bool:
    """True if writes are enabled and ``given`` equals the token (constant-time compare)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class TokenFailureLimiter:
    """Counts wrong write tokens per client and refuses a client that sent too many.

    After ``max_failures`` wrong tokens within ``window_s`` seconds a client gets no
    further token check until the oldest of those failures leaves the window: a
    guesser gets a handful of tries per window instead of thousands per second.
    Only failures are counted; a right token is never slowed down by its own client's
    earlier typos beyond the window. Thread-safe (FastAPI runs sync routes on a pool).

    Args:
        max_failures: Wrong tokens allowed per client within the window.
        window_s: Length of the sliding window, seconds.
        max_clients: Clients tracked at most; the stalest are forgotten beyond it, so
            a flood of addresses cannot grow memory without bound.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300.0,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError(
                f"max_failures must be >= 1 and window_s > 0, got {max_failures}, {window_s}"
            )
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        return times

    def retry_after_s(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try a token again; None = it may now."""
        with self._lock:
            now = self._clock()
            times = self._recent(client, now)
            if len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[0] + self.window_s - now))

    def record_failure(self, client: str) -> None:
        """Count one wrong token from ``client``."""
        with self._lock:
            now = self._clock()
            times = self._recent(client, now)
            times.append(now)
            self._failures.pop(client, None)
            self._failures[client] = times  # re-inserted: dict order = least recent first
            while len(self._failures) > self.max_clients:
                del self._failures[next(iter(self._failures))]


def new_csrf_token() -> str:
    """A fresh random CSRF token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def is_csrf_valid(cookie: str | None, field: str | None) -> bool:
    """True if the form repeats the cookie's CSRF token (constant-time compare)."""
    if not cookie or not field:
        return False
    return hmac.compare_digest(cookie.encode("utf-8"), field.encode("utf-8"))


def is_same_origin(origin: str | None, host: str | None) -> bool:
    """True if a request's ``Origin`` header is absent or names the host it was sent to.

    Browsers send ``Origin`` on every cross-site POST; a mismatch is a forged form.
    """
    if origin is None:
        return True
    if origin == "null" or host is None:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


def security_headers(extra_img_src: str | None = None) -> dict[str, str]:
    """Headers sent with every response: no inline scripts, no framing, no sniffing.

    Args:
        extra_img_src: Origin of an optional basemap tile server to allow images from.
    """
    img_src = "'self' data:" + (f" {extra_img_src}" if extra_img_src else "")
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; "
            f"img-src {img_src}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on
        # form posts, which is_same_origin must refuse.
        "Referrer-Policy": "same-origin",
    }
