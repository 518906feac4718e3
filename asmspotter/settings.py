"""Process-wide settings: where data, AOIs and models live, which database to use.

Read from environment variables prefixed ``ASMSPOTTER_`` (e.g.
``ASMSPOTTER_DATABASE_URL``), validated once at the edge. Everything else about
a monitoring job lives in the AOI YAML, not here.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root in a source checkout (where aoi_definitions/ and models/ are)."""


class Settings(BaseSettings):
    """Where asmspotter reads and writes. Override any field with ``ASMSPOTTER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ASMSPOTTER_", extra="ignore")

    data_dir: Path = Field(
        default=PROJECT_ROOT / "data",
        description="Root for the download cache, composites, outputs, outbox and SQLite file.",
    )
    aoi_dir: Path = Field(
        default=PROJECT_ROOT / "aoi_definitions",
        description="Folder of AOI YAML files, one per AOI.",
    )
    models_dir: Path = Field(
        default=PROJECT_ROOT / "models",
        description="Folder of trained models, one sub-folder (weights + model_card.json) each.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default: SQLite file in data_dir.",
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="Address of a dask.distributed scheduler; default: local threads.",
    )
    max_concurrent_aois: int = Field(
        default=2,
        ge=1,
        description="AOIs monitor_all runs at once without a Dask cluster (threads).",
    )
    gdal_cache_mb: int = Field(
        default=256,
        ge=16,
        description=(
            "GDAL block cache per process, in MB (GDAL's own default is 5% of RAM, which "
            "grows with the AOI until it is full); also applied to Dask workers."
        ),
    )
    max_aoi_km2: float = Field(
        default=50_000.0,
        gt=0,
        description=(
            "Largest AOI accepted, km² (geodesic). Temporary disk grows with the area "
            "(~2 bytes per pixel at 10 m for the composite's second overview, beside "
            "the composite itself); split a larger region into AOIs."
        ),
    )
    run_lock_wait_s: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Seconds a run waits for another run of the same AOI and window to finish "
            "before it is refused (0: refused at once, nothing changed)."
        ),
    )

    web_token: SecretStr | None = Field(
        default=None,
        description=(
            "Token the review web app asks for before a write (confirm / dismiss); "
            "neither this nor web_token_secret set: the web app is read-only."
        ),
    )
    web_token_secret: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the web app's write token.",
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "Address of the review web app as alert readers reach it (e.g. "
            "https://asm.example.org); alerts then link each site to its page."
        ),
    )

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<data_dir>/asmspotter.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'asmspotter.db').resolve()}"

    @property
    def cache_dir(self) -> Path:
        """Download cache: ``<data_dir>/cache/<provider>/<scene_id>/``."""
        return self.data_dir / "cache"

    @property
    def outputs_dir(self) -> Path:
        """Per-run outputs: ``<data_dir>/outputs/<aoi>/<window_end>/``."""
        return self.data_dir / "outputs"

    @property
    def outbox_dir(self) -> Path:
        """Alerts written to disk when an AOI has no alert URL configured."""
        return self.data_dir / "outbox"

    def run_dir(self, aoi_name: str, window_end: str) -> Path:
        """Folder for one run's composite, probability map and sites."""
        return self.outputs_dir / aoi_name / window_end


def get_settings() -> Settings:
    """Read settings from the environment (fresh each call, so tests can monkeypatch env)."""
    return Settings()
