"""The one retry below Prefect's: an HTTP client retries one request through a flaky moment.

Two layers, no more. Inside: every HTTP request a provider's client makes is tried
up to ``tries`` times on HTTP 500/502/503/504 or a read that broke, a fraction of a
second apart (:class:`RequestRetry`: urllib3's retry for the requests-based clients,
pystac-client, the SAS token request and sentinelsat; GDAL's own for ``/vsicurl/``
range reads; the planet SDK keeps its built-in retry of 429/502). A host that
cannot be connected to is not retried here: waiting a second does not bring it
back (:mod:`asmspotter.providers.reachability`). Outside: what still fails is a
``ProviderUnavailableError`` (429 goes there at once) and the Prefect task retries
it after 10, 60 and 300 s (``tasks/search.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3 import Retry

TRANSIENT_STATUSES = (500, 502, 503, 504)
"""Statuses retried inside one request; 429 and whatever outlasts the tries become
``ProviderUnavailableError`` for the Prefect task's slower retry."""


@dataclass(frozen=True)
class RequestRetry:
    """How often and how fast one HTTP request is tried again.

    Attributes:
        tries: Attempts per request, >= 1 (1 = no retry).
        backoff_s: Back-off factor between attempts, seconds (urllib3's
            ``backoff_factor``; GDAL waits this long between its tries). 0 in tests.
    """

    tries: int = 3
    backoff_s: float = 0.5

    def urllib3_retry(self) -> Retry:
        """The urllib3 retry for a requests session or pystac-client's ``StacApiIO``.

        Every verb is retried (a STAC search POST is safe to repeat); 401/403/404/429
        come back at once, and so does a connection that could not be made.
        """
        return Retry(
            total=max(1, self.tries) - 1,
            connect=0,
            backoff_factor=self.backoff_s,
            status_forcelist=TRANSIENT_STATUSES,
            allowed_methods=None,
            raise_on_status=False,
            respect_retry_after_header=False,
        )

    def mount_on(self, session: requests.Session) -> requests.Session:
        """``session`` with this retry on every http(s) request it sends."""
        adapter = HTTPAdapter(max_retries=self.urllib3_retry())
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def gdal_options(self) -> dict[str, str]:
        """GDAL config options giving ``/vsicurl/`` range reads the same retry.

        ``GDAL_HTTP_RETRY_CODES`` (GDAL >= 3.10) narrows GDAL's default, which also
        retries 429, to the same statuses; an older GDAL ignores it.
        """
        return {
            "GDAL_HTTP_RETRY_CODES": ",".join(map(str, TRANSIENT_STATUSES)),
            "GDAL_HTTP_MAX_RETRY": str(max(1, self.tries) - 1),
            # A delay of 0 turns GDAL's retry off altogether, hence the floor.
            "GDAL_HTTP_RETRY_DELAY": str(max(self.backoff_s, 0.01)),
        }


DEFAULT_REQUEST_RETRY = RequestRetry()
"""What the providers use unless told otherwise: 3 tries, back-off factor 0.5 s."""
