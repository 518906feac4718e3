"""Asset hrefs: the HTTP(S) URL to read, and the same URL fit for a message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def resolve_asset_href(asset: Mapping[str, Any]) -> str:
    """An HTTP(S) URL for an asset: its href, or its ``alternate`` HTTPS href.

    CDSE's primary hrefs are ``s3://eodata/...``; the HTTPS download URL sits under
    ``alternate.https.href`` (STAC alternate-assets extension).
    """
    href = str(asset.get("href", ""))
    if href.startswith(("http://", "https://")):
        return href
    alternates = asset.get("alternate")
    if isinstance(alternates, dict):
        for alternate in alternates.values():
            alt_href = alternate.get("href") if isinstance(alternate, dict) else None
            if isinstance(alt_href, str) and alt_href.startswith(("http://", "https://")):
                return alt_href
    return href


def redact_url(url: str) -> str:
    """``url`` without its query string and user info (SAS tokens, keys live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
