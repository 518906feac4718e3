"""GDAL's per-process ``/vsicurl/`` cache, and how to make it forget one remote file."""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import threading
from pathlib import Path
from typing import Any

import rasterio

logger = logging.getLogger(__name__)

_gdal_lib_lock = threading.Lock()
_gdal_clear: Any = None
_gdal_clear_looked_up = False


def _find_gdal_partial_clear() -> Any:
    """``VSICurlPartialClearCache`` of the GDAL rasterio uses, or None if not found.

    GDAL caches, per process, whether a remote file exists and its size; after a
    404/503 or a dropped connection a retry in the same process would otherwise see
    the cached failure. rasterio does not expose the C function, so it is looked up
    in the GDAL library rasterio loaded (wheel: ``rasterio.libs``/``.dylibs``).
    """
    global _gdal_clear, _gdal_clear_looked_up
    with _gdal_lib_lock:
        if _gdal_clear_looked_up:
            return _gdal_clear
        _gdal_clear_looked_up = True
        package = Path(rasterio.__file__).parent
        candidates = [
            *glob.glob(str(package.parent / "rasterio.libs" / "libgdal*")),
            *glob.glob(str(package / ".dylibs" / "libgdal*")),
        ]
        system = ctypes.util.find_library("gdal")
        if system:
            candidates.append(system)
        for candidate in candidates:
            try:
                function = ctypes.CDLL(candidate).VSICurlPartialClearCache
            except (OSError, AttributeError):
                continue
            function.argtypes = [ctypes.c_char_p]
            function.restype = None
            _gdal_clear = function
            break
        else:
            logger.debug("GDAL VSICurlPartialClearCache not found; /vsicurl/ cache kept")
        return _gdal_clear


def forget_remote_file(url: str) -> None:
    """Drop what GDAL's ``/vsicurl/`` cache holds about ``url`` (best effort)."""
    function = _find_gdal_partial_clear()
    if function is not None:
        function(f"/vsicurl/{url}".encode())
