"""An unreachable host (DNS, refused connection) is told apart from a transient outage."""

from __future__ import annotations

import socket

import httpx
import pytest
import requests
from prefect.states import Completed, Failed

from asmspotter.errors import ProviderUnavailableError, ProviderUnreachableError
from asmspotter.providers.reachability import unreachable_reason, without_retry_promise
from tasks.search import retry_if_unavailable


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrapped(cause: BaseException) -> ProviderUnavailableError:
    """What a provider raises: our error, raised from the client library's."""
    try:
        raise cause
    except BaseException as exc:
        try:
            raise ProviderUnavailableError(
                "AOI x: host is unavailable; it will be retried."
            ) from exc
        except ProviderUnavailableError as ours:
            return ours


def test_refused_connection_through_requests_is_unreachable():
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{closed_port()}/", timeout=2)
    assert unreachable_reason(wrapped(caught.value)) == "connection refused"


def test_refused_connection_through_httpx_is_unreachable():
    with pytest.raises(httpx.ConnectError) as caught:
        httpx.get(f"http://127.0.0.1:{closed_port()}/", timeout=2)
    assert unreachable_reason(wrapped(caught.value)) == "connection refused"


def test_dns_failure_is_unreachable():
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert unreachable_reason(wrapped(error)) == "host name not resolved"


@pytest.mark.parametrize(
    "cause",
    [
        requests.ReadTimeout("HTTPSConnectionPool: Read timed out. (read timeout=30)"),
        httpx.ReadTimeout("timed out"),
        RuntimeError("HTTP 503 Service Unavailable"),
    ],
)
def test_timeouts_and_server_errors_are_not_unreachable(cause):
    assert unreachable_reason(wrapped(cause)) is None


def test_retry_condition_skips_unreachable_and_retries_outages():
    unreachable = ProviderUnreachableError("host cannot be reached (connection refused)")
    outage = ProviderUnavailableError("HTTP 503")
    assert retry_if_unavailable(None, None, Failed(data=unreachable)) is False
    assert retry_if_unavailable(None, None, Failed(data=outage)) is True
    assert retry_if_unavailable(None, None, Failed(data=ValueError("bug"))) is False
    assert retry_if_unavailable(None, None, Completed(data=1)) is False


def test_retry_promise_is_dropped_from_the_message():
    assert (
        without_retry_promise("a is down (HTTP 503); it will be retried.") == "a is down (HTTP 503)"
    )
    assert without_retry_promise("b failed; the task will retry.") == "b failed"
    assert without_retry_promise("nothing to drop") == "nothing to drop"
