"""What a GDAL ``/vsicurl/`` read failure says: its chained messages and HTTP status.

GDAL reports remote failures as text (``HTTP response code: 503``) somewhere in
the exception chain rasterio raises; the provider turns that into our error classes.
"""

from __future__ import annotations

import re


def exception_text(exc: BaseException) -> str:
    """Messages of an exception and everything it chains to (GDAL puts the cause there)."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


HTTP_CODE = re.compile(r"HTTP response code: (\d{3})")
SHORT_READ = re.compile(r"got \d+ bytes, expected \d+|curl error|timed out|timeout", re.I)
QUERY_STRING = re.compile(r"\?[^\s'\"]*")


def http_status_in(text: str) -> int | None:
    """The HTTP status GDAL names in ``text``, or None."""
    match = HTTP_CODE.search(text)
    return int(match.group(1)) if match else None
