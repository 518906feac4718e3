"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives.

Used by the alert tests and the end-to-end flow tests: apprise delivers to it
through ``mailto://127.0.0.1:<port>/to@x?from=me@x`` exactly as to a real relay.
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any


def free_port() -> int:
    """A loopback port nobody listens on right now (bound, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Inbox:
    """Every message the server accepted: recipients and raw bytes, in order."""

    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Aiosmtpd's hook: keep the message."""
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        """The received messages, parsed."""
        return [
            email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[misc]
            for _, raw in self.received
        ]


@contextmanager
def serve_smtp() -> Iterator[tuple[int, Inbox]]:
    """Run an SMTP server on a free loopback port; yield (port, inbox)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()
