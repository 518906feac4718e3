"""Imagery providers behind one interface (``base.Provider``).

``resolve_provider`` turns a validated ``sources[]`` entry of an AOI YAML into a
provider object. Remote providers (and their vendor SDKs) are imported lazily, so
a missing optional SDK only matters to the AOIs that use it.
"""

from __future__ import annotations

from pathlib import Path

from asmspotter.aoi import AOI
from asmspotter.providers.base import LocalScene, Provider, SceneRef, TimeWindow
from asmspotter.settings import Settings
from asmspotter.sources import LocalSourceConfig, SourceConfig

__all__ = ["LocalScene", "Provider", "SceneRef", "TimeWindow", "resolve_provider"]


def resolve_local_path(raw_path: str, aoi: AOI, settings: Settings) -> Path:
    """Expand ``{data_dir}`` and resolve relative paths against the AOI file's folder."""
    expanded = Path(raw_path.replace("{data_dir}", str(settings.data_dir)))
    return expanded if expanded.is_absolute() else (aoi.path.parent / expanded).resolve()


def resolve_provider(source: SourceConfig, aoi: AOI, settings: Settings) -> Provider:
    """Build the provider an AOI source names.

    Args:
        source: One validated entry of the AOI's ``sources``.
        aoi: The AOI it belongs to (for relative paths, its grid and the demo data).
        settings: Process settings (data directory).

    Returns:
        A ready provider.

    Raises:
        ProviderNotConfiguredError: the provider cannot run here (SDK or option missing).
    """
    if isinstance(source, LocalSourceConfig):
        from asmspotter.providers.local import LocalProvider

        folder = resolve_local_path(source.path, aoi, settings)
        if source.generate_demo_scenes:
            from asmspotter.samples import ensure_demo_scenes

            ensure_demo_scenes(folder, aoi.geometry_lonlat, resolution_m=source.resolution_m)
        return LocalProvider(
            folder, resolution_m=source.resolution_m, max_cloud_pct=source.max_cloud_pct
        )
    from asmspotter.sources import StacSourceConfig

    if isinstance(source, StacSourceConfig):
        from asmspotter.grid import build_grid
        from asmspotter.providers.stac import StacProvider

        grid = build_grid(aoi.geometry_lonlat, source.resolution_m)
        return StacProvider(source, grid, aoi.name)
    from asmspotter.sources import PlanetSourceConfig

    if isinstance(source, PlanetSourceConfig):
        from asmspotter.grid import build_grid
        from asmspotter.providers.planet import PlanetProvider

        grid = build_grid(aoi.geometry_lonlat, source.resolution_m)
        return PlanetProvider(source, grid, aoi.geometry_lonlat, aoi.name)
    from asmspotter.sources import DhusSourceConfig

    if isinstance(source, DhusSourceConfig):
        from asmspotter.grid import build_grid
        from asmspotter.providers.dhus import DhusProvider

        grid = build_grid(aoi.geometry_lonlat, source.resolution_m)
        return DhusProvider(source, grid, aoi.name)
    from asmspotter.errors import ProviderNotConfiguredError

    raise ProviderNotConfiguredError(
        f"AOI {aoi.name}: provider {source.provider!r} is not available in this version of "
        f"asmspotter; use provider 'local' in {aoi.path}."
    )
