"""Tests of asmspotter.track with answers known by construction.

All geometries are axis-aligned rectangles in UTM zone 21N (EPSG:32621) near
(500 000 E, 500 000 N), about 57°W 4.5°N: a 200 m x 200 m square is exactly 4 ha.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import geopandas as gpd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from asmspotter.events import SiteEvent
from asmspotter.track import KnownSite, TrackingThresholds, track_sites

EPSG = 32621
X0, Y0 = 500_000.0, 500_000.0
W1 = dt.date(2024, 1, 30)
W2 = dt.date(2024, 2, 29)
THRESHOLDS = TrackingThresholds()  # 30 m buffer, 1 ha and 20 %, half visible
EVERYWHERE = box(X0 - 10_000, Y0 - 10_000, X0 + 10_000, Y0 + 10_000)


def rect(dx: float, dy: float, width: float, height: float) -> BaseGeometry:
    """Rectangle with its south-west corner at (X0 + dx, Y0 + dy), sizes in metres."""
    return box(X0 + dx, Y0 + dy, X0 + dx + width, Y0 + dy + height)


def frame(
    geometries: Sequence[BaseGeometry],
    probs: Sequence[float] | None = None,
    cuts: Sequence[float] | None = None,
):
    """Detections as the detector hands them over; ``cuts`` adds each outline's threshold."""
    probs = list(probs) if probs is not None else [0.9] * len(geometries)
    detections = gpd.GeoDataFrame(
        {
            "area_ha": [g.area / 10_000 for g in geometries],
            "mean_probability": probs,
        },
        geometry=list(geometries),
        crs=f"EPSG:{EPSG}",
    )
    if cuts is not None:
        detections["outline_threshold"] = list(cuts)
    return detections


def known(site_id: str, geometry: BaseGeometry, status: str = "active") -> KnownSite:
    return KnownSite(
        site_id=site_id,
        geometry=geometry,
        area_ha=geometry.area / 10_000,
        first_seen=W1,
        status=status,
    )


def track(
    detections: Sequence[BaseGeometry],
    sites: Sequence[KnownSite] = (),
    *,
    clear_now: BaseGeometry = EVERYWHERE,
    clear_before: BaseGeometry | None = EVERYWHERE,
    ids: Sequence[str] = ("demo-0101", "demo-0102", "demo-0103"),
    probs: Sequence[float] | None = None,
    cuts: Sequence[float] | None = None,
    thresholds: TrackingThresholds = THRESHOLDS,
    **kwargs,
) -> dict[str, SiteEvent]:
    events = track_sites(
        frame(detections, probs, cuts),
        sites,
        clear_now=clear_now,
        clear_before=clear_before,
        window_end=W2,
        epsg=EPSG,
        new_site_ids=iter(ids),
        thresholds=thresholds,
        **kwargs,
    )
    by_id = {e.site_id: e for e in events}
    assert len(by_id) == len(events), "one event per site"
    return by_id


def test_unmatched_detection_is_new_with_fresh_id():
    """One 200 m x 200 m square, nothing known: one new 4 ha site."""
    events = track([rect(0, 0, 200, 200)], probs=[0.8])
    (event,) = events.values()
    assert event.site_id == "demo-0101"
    assert event.kind == "new"
    assert event.area_ha == pytest.approx(4.0)
    assert event.previous_area_ha is None
    assert event.growth_ha is None
    assert event.first_seen == W2
    assert event.mean_probability == pytest.approx(0.8)
    assert event.clear_observations == 0
    # Central meridian of zone 21 is 57°W; 500 km north is about 4.52°N.
    assert event.centroid_lon == pytest.approx(-57.0, abs=0.01)
    assert event.centroid_lat == pytest.approx(4.52, abs=0.01)
    assert event.is_alertable


def test_growth_over_thresholds_is_expanded():
    """4 ha grows to 6 ha: +2 ha = +50 %, both minima met."""
    events = track([rect(0, 0, 200, 300)], [known("demo-0001", rect(0, 0, 200, 200))])
    event = events["demo-0001"]
    assert event.kind == "expanded"
    assert event.area_ha == pytest.approx(6.0)
    assert event.previous_area_ha == pytest.approx(4.0)
    assert event.growth_ha == pytest.approx(2.0)
    assert event.growth_pct == pytest.approx(50.0)
    assert event.first_seen == W1


def test_growth_exactly_at_thresholds_is_expanded():
    """5 ha square site grows by exactly 1 ha = 20 %: on the threshold counts."""
    events = track([rect(0, 0, 200, 300)], [known("demo-0001", rect(0, 0, 200, 250))])
    assert events["demo-0001"].growth_ha == pytest.approx(1.0)
    assert events["demo-0001"].growth_pct == pytest.approx(20.0)
    assert events["demo-0001"].kind == "expanded"


def test_small_growth_is_unchanged():
    """4 ha to 4.2 ha: +0.2 ha, +5 %: under both minima."""
    events = track([rect(0, 0, 200, 210)], [known("demo-0001", rect(0, 0, 200, 200))])
    event = events["demo-0001"]
    assert event.kind == "unchanged"
    assert event.growth_ha == pytest.approx(0.2)
    assert event.growth_pct == pytest.approx(5.0)
    assert not event.is_alertable


def test_growth_needs_both_minima():
    """100 ha grows by 2 ha: over 1 ha but only 2 %, so unchanged."""
    events = track([rect(0, 0, 1000, 1020)], [known("demo-0001", rect(0, 0, 1000, 1000))])
    assert events["demo-0001"].growth_ha == pytest.approx(2.0)
    assert events["demo-0001"].kind == "unchanged"


def test_smaller_detection_is_shrunk():
    """4 ha to 2 ha: -2 ha, -50 %."""
    events = track([rect(0, 0, 200, 100)], [known("demo-0001", rect(0, 0, 200, 200))])
    event = events["demo-0001"]
    assert event.kind == "shrunk"
    assert event.area_ha == pytest.approx(2.0)
    assert event.growth_ha == pytest.approx(-2.0)
    assert event.growth_pct == pytest.approx(-50.0)


def test_clear_and_undetected_site_is_shrunk_to_zero():
    """Seen clear, not detected: shrunk to 0 ha, outline kept for the next match."""
    site = known("demo-0001", rect(0, 0, 200, 200))
    events = track([], [site])
    event = events["demo-0001"]
    assert event.kind == "shrunk"
    assert event.area_ha == 0.0
    assert event.growth_ha == pytest.approx(-4.0)
    assert event.growth_pct == pytest.approx(-100.0)
    assert event.geometry.equals(site.geometry)
    assert event.mean_probability is None


def test_cloudy_undetected_site_is_not_seen():
    """Only a quarter of the site is clear now (< 0.5): not seen, last outline and area kept."""
    site = known("demo-0001", rect(0, 0, 200, 200))
    clear_now = rect(-1000, -1000, 1100, 1050)  # covers x < 100 and y < 50 of the site
    events = track([], [site], clear_now=clear_now)
    event = events["demo-0001"]
    assert event.kind == "not_seen"
    assert event.area_ha == pytest.approx(4.0)
    assert event.geometry.equals(site.geometry)
    assert event.growth_ha is None
    assert event.mean_probability is None


def test_growth_into_previously_cloudy_area_is_not_expansion():
    """The site doubles northwards into ground that was cloudy last time.

    Common clear area C = the southern 200 m only: area(new ∩ C) = area(old ∩ C) = 4 ha,
    so growth is 0 and the site is unchanged. Without the old cloud it is expanded.
    """
    site = known("demo-0001", rect(0, 0, 200, 200))
    grown = rect(0, 0, 200, 400)
    clear_before = rect(-1000, -1000, 2000, 1200)  # clear up to y = 200 only
    events = track([grown], [site], clear_before=clear_before)
    assert events["demo-0001"].kind == "unchanged"
    assert events["demo-0001"].growth_ha == pytest.approx(0.0)
    assert events["demo-0001"].area_ha == pytest.approx(8.0)

    events = track([grown], [site], clear_before=None)
    assert events["demo-0001"].kind == "expanded"
    assert events["demo-0001"].growth_ha == pytest.approx(4.0)


def test_growth_not_measurable_when_site_was_cloudy_before():
    """The whole site lay under cloud last time: growth is None and the site unchanged."""
    site = known("demo-0001", rect(0, 0, 200, 200))
    clear_before = rect(5000, 5000, 100, 100)
    events = track([rect(0, 0, 200, 400)], [site], clear_before=clear_before)
    assert events["demo-0001"].kind == "unchanged"
    assert events["demo-0001"].growth_ha is None
    assert events["demo-0001"].growth_pct is None


def test_detections_of_one_site_are_merged():
    """Two 2 ha pits next to a 4 ha site (one inside, one 20 m away): one 4 ha outline.

    Probabilities 0.6 and 0.9 over equal areas average to 0.75.
    """
    site = known("demo-0001", rect(0, 0, 200, 200))
    pits = [rect(0, 0, 200, 100), rect(0, 220, 200, 100)]
    events = track(pits, [site], probs=[0.6, 0.9])
    assert list(events) == ["demo-0001"]
    event = events["demo-0001"]
    assert event.area_ha == pytest.approx(4.0)
    assert event.geometry.area == pytest.approx(40_000)
    assert event.mean_probability == pytest.approx(0.75)


def test_detection_beyond_buffer_is_a_new_site():
    """A pit 40 m from the site (> 30 m buffer) is a new site; the old one is shrunk to 0."""
    site = known("demo-0001", rect(0, 0, 200, 200))
    events = track([rect(0, 240, 200, 200)], [site])
    assert events["demo-0101"].kind == "new"
    assert events["demo-0001"].kind == "shrunk"


def test_detection_touching_two_sites_goes_to_largest_overlap():
    """A detection overlapping site A by 1 ha and site B by 3 ha belongs to B."""
    a = known("demo-0001", rect(0, 0, 200, 200))
    b = known("demo-0002", rect(0, 300, 200, 200))
    detection = rect(0, 150, 200, 300)  # 50 m into A (1 ha), 150 m into B (3 ha)
    events = track([detection], [a, b])
    assert events["demo-0002"].geometry.equals(detection)
    assert events["demo-0001"].kind == "shrunk"
    assert events["demo-0001"].area_ha == 0.0


def test_nearby_new_detections_form_one_site():
    """Two new pits 20 m apart (< 30 m buffer) are one new site; a far one is another."""
    pits = [rect(0, 0, 100, 100), rect(120, 0, 100, 100), rect(3000, 0, 100, 100)]
    events = track(pits)
    assert sorted(events) == ["demo-0101", "demo-0102"]
    assert events["demo-0101"].area_ha == pytest.approx(2.0)
    assert events["demo-0102"].area_ha == pytest.approx(1.0)


def test_ids_persist_across_runs():
    """Run 1 finds a site; run 2 sees it again (same id) and a new one (next id)."""
    first = track_sites(
        frame([rect(0, 0, 200, 200)]),
        [],
        clear_now=EVERYWHERE,
        clear_before=None,
        window_end=W1,
        epsg=EPSG,
        new_site_ids=iter(["demo-0001"]),
        thresholds=THRESHOLDS,
    )
    assert [(e.site_id, e.kind) for e in first] == [("demo-0001", "new")]
    sites = [KnownSite(e.site_id, e.geometry, e.area_ha, e.first_seen, "active") for e in first]
    events = track([rect(5, 5, 200, 200), rect(2000, 0, 200, 200)], sites, ids=["demo-0002"])
    assert events["demo-0001"].kind == "unchanged"
    assert events["demo-0001"].first_seen == W1
    assert events["demo-0002"].kind == "new"


def test_dismissed_sites_still_get_events():
    site = known("demo-0001", rect(0, 0, 200, 200), status="dismissed")
    events = track([rect(0, 0, 200, 300)], [site])
    assert events["demo-0001"].kind == "expanded"


def test_vanished_site_that_reappears_is_expanded():
    """A site recorded at 0 ha (seen clear, absent) comes back at 4 ha: +4 ha, pct undefined."""
    site = KnownSite("demo-0001", rect(0, 0, 200, 200), 0.0, W1, "active")
    events = track([rect(0, 0, 200, 200)], [site])
    assert events["demo-0001"].kind == "expanded"
    assert events["demo-0001"].growth_ha == pytest.approx(4.0)
    assert events["demo-0001"].growth_pct is None


def test_clear_counts_callback_and_callable_ids():
    counter = iter(range(7, 100))
    events = track_sites(
        frame([rect(0, 0, 200, 200)]),
        [],
        clear_now=EVERYWHERE,
        clear_before=None,
        window_end=W2,
        epsg=EPSG,
        new_site_ids=lambda: f"demo-{next(counter):04d}",
        thresholds=THRESHOLDS,
        clear_counts=lambda geometries: [int(g.area // 10_000) for g in geometries],
    )
    assert events[0].site_id == "demo-0007"
    assert events[0].clear_observations == 4


def test_running_out_of_ids_names_the_fix():
    with pytest.raises(ValueError, match="next_site_ids"):
        track([rect(0, 0, 100, 100), rect(3000, 0, 100, 100)], ids=["demo-0001"])


def test_new_id_colliding_with_known_site_is_refused():
    site = known("demo-0001", rect(0, 0, 200, 200))
    with pytest.raises(ValueError, match="known site"):
        track([rect(5000, 0, 100, 100)], [site], ids=["demo-0001"])


def test_detections_in_another_crs_are_refused():
    detections = frame([rect(0, 0, 100, 100)]).set_crs(32620, allow_override=True)
    with pytest.raises(ValueError, match="epsg"):
        track_sites(
            detections,
            [],
            clear_now=EVERYWHERE,
            clear_before=None,
            window_end=W2,
            epsg=EPSG,
            new_site_ids=iter(["demo-0001"]),
            thresholds=THRESHOLDS,
        )


def test_no_detections_no_sites_no_events():
    assert track([]) == {}


def test_thresholds_are_validated():
    with pytest.raises(ValueError, match="min_visible_fraction"):
        TrackingThresholds(min_visible_fraction=1.5)
    with pytest.raises(ValueError, match="min_growth_ha"):
        TrackingThresholds(min_growth_ha=-1)


@settings(max_examples=60, deadline=None)
@given(
    side_m=st.integers(min_value=50, max_value=1000),
    extra_m=st.integers(min_value=0, max_value=1000),
)
def test_growth_of_a_stretched_square(side_m: int, extra_m: int):
    """A side x side square stretched north by extra metres grows by side*extra m²."""
    site = known("demo-0001", rect(0, 0, side_m, side_m))
    event = track([rect(0, 0, side_m, side_m + extra_m)], [site])["demo-0001"]
    growth_ha = side_m * extra_m / 10_000
    assert event.growth_ha == pytest.approx(growth_ha)
    assert event.growth_pct == pytest.approx(100 * extra_m / side_m)
    expanded = growth_ha >= 1.0 - 1e-9 and 100 * extra_m / side_m >= 20.0 - 1e-9
    assert event.kind == ("expanded" if expanded else "unchanged")


def track_cuts(geometries, cuts, site: KnownSite) -> SiteEvent:
    """The one event of ``site`` when the detections carry their outline cuts."""
    (event,) = track(geometries, [site], cuts=cuts).values()
    return event


def test_a_lower_cut_outline_is_not_read_as_growth():
    """A 4 ha site outlined at 0.55 is seen only as a candidate at 0.25, outlined 9 ha.

    The larger outline is the lower cut, not new ground: unchanged, growth unknown, and
    the next run compares at the candidate's cut.
    """
    site = KnownSite("demo-0001", rect(0, 0, 200, 200), 4.0, W1, "active", "high", 0.55)
    event = track_cuts([rect(0, 0, 300, 300)], [0.25], site)
    assert event.kind == "unchanged" and event.growth_ha is None
    assert event.area_ha == pytest.approx(9.0)
    assert event.outline_threshold == pytest.approx(0.25)
    # At one cut, the same growth is growth.
    same = KnownSite("demo-0001", rect(0, 0, 200, 200), 4.0, W1, "active", "high", 0.25)
    assert track_cuts([rect(0, 0, 300, 300)], [0.25], same).kind == "expanded"


def test_growth_is_measured_on_the_detections_cut_like_the_previous_outline():
    """Detection at 0.55 grows 4 -> 6 ha; a 2.25 ha candidate joins it within the buffer."""
    site = KnownSite("demo-0001", rect(0, 0, 200, 200), 4.0, W1, "active", "high", 0.55)
    event = track_cuts([rect(0, 0, 200, 300), rect(210, 0, 150, 150)], [0.55, 0.25], site)
    assert event.kind == "expanded"
    assert event.growth_ha == pytest.approx(2.0)  # the candidate's 2.25 ha not counted
    assert event.area_ha == pytest.approx(8.25)
    assert event.outline_threshold == pytest.approx(0.55)


def test_outlines_without_a_known_cut_compare_as_before():
    event = track_cuts([rect(0, 0, 200, 300)], [0.25], known("demo-0001", rect(0, 0, 200, 200)))
    assert event.kind == "expanded" and event.growth_ha == pytest.approx(2.0)
