"""The evidence packet: what an enforcement agency is handed, verifiable by SHA-256."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zipfile
from pathlib import Path

from shapely.geometry import box

from asmspotter.alerts.evidence import ModelInfo, SceneInfo, write_evidence_packet
from asmspotter.events import SiteEvent

EPSG = 32621
LEFT, TOP = 600_000.0, 560_000.0


def _event() -> SiteEvent:
    return SiteEvent(
        site_id="ne-0004",
        kind="expanded",
        geometry=box(LEFT, TOP - 200, LEFT + 200, TOP),
        area_ha=4.0,
        previous_area_ha=3.0,
        growth_ha=1.0,
        growth_pct=33.3,
        mean_probability=0.8,
        centroid_lon=-54.09,
        centroid_lat=5.06,
        first_seen=dt.date(2024, 1, 31),
        clear_observations=4,
        verifier_score=0.92,
        confidence="high",
    )


def _write(tmp_path: Path, name: str) -> Path:
    image = tmp_path / "before-after-ne-0004.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    scene = SceneInfo(
        "earth-search",
        "S2B_21NZF_20240215_0_L2A",
        dt.datetime(2024, 2, 15, 14, 3, tzinfo=dt.UTC),
        12.0,
    )
    old = SceneInfo(
        "earth-search",
        "S2A_21NZF_20240120_0_L2A",
        dt.datetime(2024, 1, 20, 14, 3, tzinfo=dt.UTC),
        30.0,
    )
    return write_evidence_packet(
        tmp_path / name,
        aoi_name="ne",
        aoi_title="Northeast",
        window_start=dt.date(2024, 2, 1),
        window_end=dt.date(2024, 2, 29),
        before_window_end=dt.date(2024, 1, 31),
        events=[_event()],
        epsg=EPSG,
        images=[image, tmp_path / "missing.png"],
        scenes_after=[scene],
        scenes_before=[old],
        model=ModelInfo("s2-unet-v1", "1.2.0", 0.55),
    )


def test_packet_holds_images_scenes_model_outline_and_valid_checksums(tmp_path: Path) -> None:
    packet = _write(tmp_path, "evidence.zip")
    with zipfile.ZipFile(packet) as archive:
        names = set(archive.namelist())
        assert names == {
            "README.txt",
            "alert.json",
            "sites.geojson",
            "images/before-after-ne-0004.png",
            "SHA256SUMS",
        }
        record = json.loads(archive.read("alert.json"))
        assert record["model"] == {"name": "s2-unet-v1", "version": "1.2.0", "threshold": 0.55}
        after = record["imagery"]["after"]
        assert after["window_end"] == "2024-02-29"
        assert after["scenes"][0]["scene_id"] == "S2B_21NZF_20240215_0_L2A"
        assert after["scenes"][0]["acquired"].startswith("2024-02-15T14:03")
        assert record["imagery"]["before"]["window_end"] == "2024-01-31"
        assert record["imagery"]["before"]["scenes"][0]["scene_id"].startswith("S2A_")
        assert record["sites"][0]["growth_ha"] == 1.0
        outline = json.loads(archive.read("sites.geojson"))["features"][0]["geometry"]
        assert outline["type"] == "Polygon"
        lon, lat = outline["coordinates"][0][0]
        assert -57 < lon < -55 and 4 < lat < 6, "outline in lon/lat (UTM 21N, 600 km E)"
        sums = archive.read("SHA256SUMS").decode().splitlines()
        assert len(sums) == len(names) - 1
        for line in sums:
            digest, name = line.split("  ", 1)
            assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name
    assert (packet.stat().st_mode & 0o777) != 0o600


def test_packet_is_reproducible(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.zip").read_bytes()
    second = _write(tmp_path, "b.zip").read_bytes()
    assert first == second
