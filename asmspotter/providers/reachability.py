"""Tell "the host cannot be reached" apart from "the host is having a bad moment".

A provider error that wraps a DNS failure or a refused connection will not heal in
the minutes a retry waits (no network, a wrong ``sources[].url``); timeouts, HTTP
429 and 5xx can. Providers wrap the client library's exception, so the chain of
causes (``__cause__``, ``__context__``, urllib3's ``reason``, exception ``args``) is
searched, with the messages of the common libraries as a fallback.
"""

from __future__ import annotations

import re
import socket

UNREACHABLE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("connection refused", "connection refused"),
    ("name or service not known", "host name not resolved"),
    ("nodename nor servname", "host name not resolved"),
    ("temporary failure in name resolution", "host name not resolved (no DNS)"),
    ("no address associated with hostname", "host name not resolved"),
    ("failed to resolve", "host name not resolved"),
    ("getaddrinfo failed", "host name not resolved"),
    ("network is unreachable", "network unreachable"),
    ("no route to host", "no route to host"),
)
"""Lower-case message fragment -> the reason we report."""

_RETRY_PROMISES = re.compile(
    r"[;,.]?\s*(it will be retried|the task will retry|try again later)\.?\s*$", re.IGNORECASE
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception reachable from it, each once, nearest first."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending += [item for item in linked if isinstance(item, BaseException)]
    return seen


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the host of ``exc`` cannot be reached (DNS, refused, no route), or None.

    None means the failure may be transient (timeout, throttling, server error) or is
    not a connection problem at all.
    """
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, socket.gaierror):
            return "host name not resolved"
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
    for item in chain:
        text = str(item).lower()
        for fragment, reason in UNREACHABLE_PATTERNS:
            if fragment in text:
                return reason
    return None


def without_retry_promise(message: str) -> str:
    """``message`` without a trailing "it will be retried" (the unreachable are not)."""
    return _RETRY_PROMISES.sub("", message.strip()).rstrip(" ;,.")
