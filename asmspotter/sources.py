"""The ``sources[]`` entries of an AOI YAML: which provider, with which options.

One pydantic model per provider, discriminated by ``provider``. Credentials are
never written here: options name the environment variable (or Prefect Secret
block) that holds them, and the provider reads it when it runs, so
``aoi validate`` needs no secrets. The providers themselves live in
``asmspotter.providers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from asmspotter.scenes import SCL_MASKED_CLASSES


class _SourceBase(BaseModel):
    """Options every source has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_cloud_pct: float = Field(
        default=80.0, ge=0, le=100, description="Skip scenes cloudier than this (percent)."
    )


class LocalSourceConfig(_SourceBase):
    """A local folder of 4-band GeoTIFF scenes (blue, green, red, nir reflectance)."""

    provider: Literal["local"] = Field(description="Provider name.")
    path: str = Field(
        description="Folder of scenes. Relative paths resolve against the AOI file's folder; "
        "'{data_dir}' expands to the ASMSPOTTER_DATA_DIR setting."
    )
    resolution_m: float = Field(default=10.0, gt=0, description="Pixel size of the scenes, m.")
    max_cloud_pct: float = Field(
        default=100.0, ge=0, le=100, description="Skip scenes cloudier than this (percent)."
    )
    generate_demo_scenes: bool = Field(
        default=False,
        description="If the folder has no scenes, generate the bundled synthetic demo series.",
    )


class StacSourceConfig(_SourceBase):
    """Sentinel-2 L2A from a STAC API (the main Sentinel-2 path)."""

    provider: Literal["sentinel-2-stac"] = Field(description="Provider name.")
    catalog: Literal["earth-search", "cdse", "planetary-computer"] = Field(
        default="earth-search",
        description="Preset: Element84 Earth Search v1, Copernicus Data Space, or Microsoft "
        "Planetary Computer (URLs are signed).",
    )
    url: str | None = Field(
        default=None, description="STAC API root URL; overrides the preset's (e.g. a mirror)."
    )
    collection: str | None = Field(
        default=None, description="Collection id; default: the preset's Sentinel-2 L2A one."
    )
    resolution_m: float = Field(default=10.0, gt=0, description="Pixel size, m (10 for S2).")
    masked_scl_classes: list[int] = Field(
        default_factory=lambda: list(SCL_MASKED_CLASSES),
        description="Scene-classification (SCL) classes treated as cloud/unusable.",
    )
    token_env: str | None = Field(
        default=None,
        description="Environment variable holding a bearer token, for catalogues that need one.",
    )


class DhusSourceConfig(_SourceBase):
    """Sentinel-2 from a Data Hub Software (DHuS) hub, through sentinelsat."""

    provider: Literal["sentinel-2-dhus"] = Field(description="Provider name.")
    url: str = Field(
        description="The hub's API root, e.g. https://<hub>/ (a DHuS mirror or national hub; "
        "the old Copernicus Open Access Hub is gone)."
    )
    product_type: Literal["S2MSI2A", "S2MSI1C"] = Field(
        default="S2MSI2A", description="L2A (with SCL) or L1C (cloud mask from s2cloudless)."
    )
    user_env: str = Field(default="DHUS_USER", description="Variable holding the user name.")
    password_env: str = Field(default="DHUS_PASSWORD", description="Variable holding the password.")
    resolution_m: float = Field(default=10.0, gt=0, description="Pixel size, m.")
    masked_scl_classes: list[int] = Field(
        default_factory=lambda: list(SCL_MASKED_CLASSES),
        description="SCL classes treated as cloud/unusable (L2A).",
    )


class PlanetSourceConfig(_SourceBase):
    """PlanetScope (PSScene) through the planet SDK: Data API + Orders API."""

    provider: Literal["planetscope"] = Field(description="Provider name.")
    url: str = Field(
        default="https://api.planet.com", description="API base URL (tests use a local fake)."
    )
    mode: Literal["orders-clip", "assets"] = Field(
        default="orders-clip",
        description="orders-clip: an Orders API order clipped to the AOI (cheaper for large "
        "scenes); assets: activate and download whole scene assets.",
    )
    api_key_env: str = Field(
        default="PL_API_KEY", description="Variable holding the Planet API key."
    )
    api_key_secret_block: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the key instead."
    )
    resolution_m: float = Field(default=3.0, gt=0, description="Pixel size, m.")


SourceConfig = Annotated[
    LocalSourceConfig | StacSourceConfig | DhusSourceConfig | PlanetSourceConfig,
    Field(discriminator="provider"),
]
"""One ``sources[]`` entry; pydantic picks the model by its ``provider`` value."""


def resolve_local_path(raw_path: str, aoi_path: Path, data_dir: Path) -> Path:
    """The folder a local source's ``path`` names, as an absolute path.

    Args:
        raw_path: ``sources[].path`` as written in the AOI YAML.
        aoi_path: The AOI file; relative paths resolve against its folder.
        data_dir: What ``{data_dir}`` expands to (the ``ASMSPOTTER_DATA_DIR`` setting).

    Returns:
        The folder, absolute.
    """
    expanded = Path(raw_path.replace("{data_dir}", str(data_dir)))
    return expanded if expanded.is_absolute() else (aoi_path.parent / expanded).resolve()
