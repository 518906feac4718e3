"""Per-site facts of an alert: DMS, geodesic way from a named place, river, dismiss line, run link."""

from __future__ import annotations

import datetime as dt
import shlex

import pytest
from pyproj import Geod

from asmspotter.alerts.facts import (
    dismiss_command,
    format_dms,
    is_public_url,
    nearest_places,
    prefect_run_url,
)
from asmspotter.alerts.render import render_alert
from asmspotter.events import SiteEvent
from fakes.events import square_site

ALBINA = (-54.0520, 5.4970)  # lon, lat
MAROWIJNE = (-54.0300, 5.4500)


def _event(lat: float, lon: float) -> SiteEvent:
    return square_site(
        "ne-suriname-0007", 0, 0, centroid_lat=lat, centroid_lon=lon, verifier_score=0.91
    )


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (5.12, -54.91, "5°07'12.0\"N 54°54'36.0\"W"),
        (-12.5, -69.25, "12°30'00.0\"S 69°15'00.0\"W"),
        (0.99999999, 10.0, "1°00'00.0\"N 10°00'00.0\"E"),  # no 60.0 seconds
    ],
)
def test_format_dms(lat: float, lon: float, expected: str) -> None:
    assert format_dms(lat, lon) == expected


def test_nearest_place_and_river_are_geodesic() -> None:
    labels = {"Albina": list(ALBINA), "Marowijne river": list(MAROWIJNE), "Far": [-55.0, 4.0]}
    site_lon, site_lat = -54.0300, 5.5200
    place, river = nearest_places(site_lat, site_lon, labels)
    assert place is not None and river is not None
    assert place.name == "Albina" and river.name == "Marowijne river"
    azimuth, _, dist_m = Geod(ellps="WGS84").inv(*ALBINA, site_lon, site_lat)
    assert place.distance_km == pytest.approx(dist_m / 1000)
    assert place.bearing_deg == pytest.approx(azimuth % 360)
    assert place.compass == "NE"
    assert nearest_places(site_lat, site_lon, {}) == (None, None)


def test_dismiss_command_is_shell_safe() -> None:
    line = dismiss_command("demo-0003", "it's a road")
    assert shlex.split(line) == [
        "asmspotter",
        "sites",
        "dismiss",
        "demo-0003",
        "--reason",
        "it's a road",
    ]


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://127.0.0.1:4200", False),
        ("http://localhost:4200", False),
        ("http://10.1.2.3:4200", False),
        ("http://prefect:4200", False),
        ("https://prefect.example.org", True),
        ("https://8.8.8.8", True),
        (None, False),
    ],
)
def test_is_public_url(url: str | None, public: bool) -> None:
    assert is_public_url(url) is public


def test_prefect_run_url_only_when_public() -> None:
    run = "0b6c1c3e-1111-2222-3333-444455556666"
    assert prefect_run_url(None, "http://127.0.0.1:4200/api", run) is None
    assert prefect_run_url(None, "https://prefect.example.org/api", run) == (
        f"https://prefect.example.org/runs/flow-run/{run}"
    )
    assert prefect_run_url("https://ui.example.org/", None, run) == (
        f"https://ui.example.org/runs/flow-run/{run}"
    )
    assert prefect_run_url("https://ui.example.org", None, None) is None


def test_alert_carries_every_field_fact() -> None:
    """Each body has DMS, imagery dates, the way from the place, the river, the dismiss line."""
    event = _event(5.5200, -54.0300)
    labels = {"Albina": list(ALBINA), "Marowijne river": list(MAROWIJNE)}
    run_url = "https://prefect.example.org/runs/flow-run/abc"
    msg = render_alert(
        "ne-suriname",
        "Northeast Suriname",
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 29),
        [event],
        labels=labels,
        imagery_before=dt.date(2024, 1, 31),
        run_url=run_url,
    )
    dms = format_dms(5.52, -54.03)
    command = "asmspotter sites dismiss ne-suriname-0007 --reason"
    for body in (msg.body_text, msg.body_html, msg.body_markdown):
        assert "2024-01-31" in body and "2024-02-29" in body
        assert "of Albina" in body and "bearing" in body
        assert "Marowijne river" in body
        assert command in body
        assert run_url in body
    assert dms in msg.body_text and dms in msg.body_markdown
    assert "imagery: before 2024-01-31, after 2024-02-29" in msg.body_text
    assert "high (verifier 0.91)" in msg.body_text
