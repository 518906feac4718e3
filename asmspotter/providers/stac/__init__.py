"""Sentinel-2 L2A from a STAC API: Earth Search, CDSE or the Planetary Computer.

``search`` asks the catalogue's item search (pystac-client) for the window's
scenes over the AOI; ``download`` reads only the AOI's part of each band through
GDAL ``/vsicurl/`` (HTTP range requests on the COG tiles), warped onto the AOI
grid, turns digital numbers into reflectance with the scene's scale and offset,
builds the cloud mask from the scene classification (SCL), and writes the result
in the local scene format (``asmspotter.scene_io.write_scene``) into the download
cache (``asmspotter.providers.cache``). The composite (``asmspotter.composite``)
then reads it like any other scene.

The package's modules: :mod:`.provider` (``StacProvider``), :mod:`.catalogs`
(presets), :mod:`.radiometry`, :mod:`.hrefs`, :mod:`.gdal_errors`,
:mod:`.vsicurl_cache`.

Errors are translated here, once: HTTP 401/403 -> ``ProviderAuthError`` (never
retried); connection errors, 429 and 5xx -> ``ProviderUnavailableError`` (the
Prefect tasks retry those); a missing or unreadable asset -> ``SceneReadError``
(the flow skips that scene and goes on). ``tests/integration/test_stac_provider.py``
runs all of it against the loopback fake in ``tests/fakes/stac_server.py``.
"""

from asmspotter.providers.stac.provider import StacProvider

__all__ = ["StacProvider"]
