"""Builders of the reliability suite: a tiny AOI workspace and a store snapshot."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from asmspotter.settings import PROJECT_ROOT
from fakes.aois import write_tiny_aoi

JANUARY = [dt.date(2024, 1, d) for d in (5, 15, 25)]
WINDOW_END = dt.date(2024, 1, 31)


@dataclass(frozen=True)
class Workspace:
    """A tiny AOI's folders and settings, set in the environment."""

    root: Path
    aoi_dir: Path
    data_dir: Path
    scenes_dir: Path
    database_url: str


def make_workspace(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str | None = None,
    *,
    name: str = "tiny",
    dates: list[dt.date] | None = None,
    **aoi_options: object,
) -> Workspace:
    """Write a tiny AOI and point every setting at ``tmp_path``."""
    from asmspotter.monitor import open_store

    open_store.cache_clear()
    aoi_dir, data_dir, scenes_dir = tmp_path / "aois", tmp_path / "data", tmp_path / "scenes"
    write_tiny_aoi(aoi_dir, scenes_dir, name, dates or JANUARY, seed=5, **aoi_options)  # type: ignore[arg-type]
    url = database_url or f"sqlite:///{data_dir / 'asmspotter.db'}"
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(aoi_dir))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))
    monkeypatch.setenv("ASMSPOTTER_DATABASE_URL", url)
    return Workspace(tmp_path, aoi_dir, data_dir, scenes_dir, url)


@dataclass(frozen=True)
class Snapshot:
    """What must never be lost or doubled: row counts, site checksum, outbox files."""

    counts: dict[str, int]
    sites_sha256: str
    outbox: tuple[str, ...]


def snapshot(database_url: str, outbox_dir: Path | None = None) -> Snapshot:
    """Row counts of every table, a checksum of the sites, the outbox's file names."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            counts = {
                table: int(
                    connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                )
                for table in ("run", "scene", "site", "observation", "alert_delivery")
            }
            sites = connection.execute(
                sa.text("SELECT id, first_seen, geometry_wkt, status FROM site ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    digest = hashlib.sha256(repr([tuple(map(str, row)) for row in sites]).encode()).hexdigest()
    files = (
        tuple(sorted(p.name for p in outbox_dir.rglob("*") if p.is_file()))
        if outbox_dir and outbox_dir.exists()
        else ()
    )
    return Snapshot(counts, digest, files)
