"""AOI YAML validation and the registry: bad files get clear errors and never block others."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from asmspotter.aoi import find_aoi, load_aoi, load_registry
from asmspotter.errors import AOIConfigError
from asmspotter.settings import PROJECT_ROOT

VALID = textwrap.dedent(
    """
    name: {name}
    title: Test AOI
    geometry:
      type: Polygon
      coordinates: [[[-55.0, 5.0], [-54.9, 5.0], [-54.9, 5.1], [-55.0, 5.1], [-55.0, 5.0]]]
    sources:
      - provider: local
        path: scenes
    schedule:
      start_date: 2024-01-01
    """
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads_with_defaults(tmp_path):
    aoi = load_aoi(write(tmp_path, "alpha", VALID.format(name="alpha")))
    assert aoi.name == "alpha"
    assert aoi.config.schedule.revisit_days == 5
    assert aoi.config.detection.model == "s2-unet-v1"
    # 0.1 deg x 0.1 deg at 5 N is about 11.1 km x 11.0 km
    assert 115 < aoi.area_km2 < 128


def test_bad_field_names_file_field_and_expectation(tmp_path):
    text = VALID.format(name="beta") + "detection:\n  min_area_ha: -2\n"
    with pytest.raises(
        AOIConfigError, match=r"beta\.yaml: detection\.min_area_ha: .*greater than 0"
    ):
        load_aoi(write(tmp_path, "beta", text))


def test_unknown_provider_lists_valid_choice(tmp_path):
    text = VALID.format(name="gamma").replace("provider: local", "provider: sentinel-9")
    with pytest.raises(AOIConfigError, match=r"gamma\.yaml: sources\.0.*'local'"):
        load_aoi(write(tmp_path, "gamma", text))


def test_unknown_key_is_rejected(tmp_path):
    text = VALID.format(name="delta") + "revisit: 5\n"
    with pytest.raises(
        AOIConfigError, match=r"delta\.yaml: revisit: Extra inputs are not permitted"
    ):
        load_aoi(write(tmp_path, "delta", text))


def test_broken_yaml_is_reported_not_raised_by_registry(tmp_path):
    write(tmp_path, "good", VALID.format(name="good"))
    bad = write(tmp_path, "bad", "name: bad\ntitle: [unclosed\n")
    registry = load_registry(tmp_path)
    assert list(registry.aois) == ["good"]
    assert list(registry.errors) == [bad]
    assert "is not valid YAML" in str(registry.errors[bad])


@pytest.mark.parametrize("date", ["2024-02-30", "2025-13-01"])
def test_impossible_date_names_file_and_field_and_spares_other_aois(tmp_path, date):
    write(tmp_path, "good", VALID.format(name="good"))
    bad = write(tmp_path, "bad", VALID.format(name="bad").replace("2024-01-01", date))
    registry = load_registry(tmp_path)
    assert list(registry.aois) == ["good"]
    message = str(registry.errors[bad])
    assert "bad.yaml: schedule.start_date:" in message and date in message


def test_name_must_match_file_stem(tmp_path):
    with pytest.raises(AOIConfigError, match="must equal the file stem 'other'"):
        load_aoi(write(tmp_path, "other", VALID.format(name="alpha")))


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [
        ("[[[-55.0, 5.0], [-54.9, 5.0], [-54.9, 5.1], [-55.0, 5.1]]]", "ring that is not closed"),
        ("[]", "Polygon has no coordinates"),
    ],
)
def test_unclosed_or_empty_polygon_is_refused(tmp_path, coordinates, expected):
    text = VALID.format(name="ring").replace(
        "[[[-55.0, 5.0], [-54.9, 5.0], [-54.9, 5.1], [-55.0, 5.1], [-55.0, 5.0]]]", coordinates
    )
    assert coordinates in text
    with pytest.raises(AOIConfigError, match=rf"ring\.yaml: geometry.*{expected}"):
        load_aoi(write(tmp_path, "ring", text))


def test_lonlat_bounds_are_checked(tmp_path):
    text = VALID.format(name="utm").replace("-55.0, 5.0", "500000, 600000")
    with pytest.raises(AOIConfigError, match="lon/lat degrees"):
        load_aoi(write(tmp_path, "utm", text))


def test_geometry_file_must_stay_inside_the_folder(tmp_path):
    inner = tmp_path / "aois"
    inner.mkdir()
    text = VALID.format(name="escape").split("geometry:")[0] + (
        "geometry: ../outside.geojson\nsources:\n  - provider: local\n    path: s\n"
        "schedule:\n  start_date: 2024-01-01\n"
    )
    (tmp_path / "outside.geojson").write_text('{"type": "Polygon", "coordinates": []}')
    with pytest.raises(AOIConfigError, match="points outside"):
        load_aoi(write(inner, "escape", text))


def test_plaintext_secret_in_alert_url_warns(tmp_path):
    text = (
        VALID.format(name="secret") + "alerts:\n  - url: mailtos://me:hunter2@smtp.x.org/a@b.org\n"
    )
    with pytest.warns(UserWarning, match=r"alerts\.0\.url looks like it holds a credential"):
        load_aoi(write(tmp_path, "secret", text))


def test_env_reference_expands_only_at_send_time(tmp_path, monkeypatch):
    text = (
        VALID.format(name="envref")
        + "alerts:\n  - url: mailtos://me:${SMTP_PW}@smtp.x.org/a@b.org\n"
    )
    aoi = load_aoi(write(tmp_path, "envref", text))  # no warning, no error without the variable
    monkeypatch.delenv("SMTP_PW", raising=False)
    with pytest.raises(AOIConfigError, match="export SMTP_PW="):
        aoi.config.alerts[0].resolved_url()
    monkeypatch.setenv("SMTP_PW", "s3cret")
    assert aoi.config.alerts[0].resolved_url() == "mailtos://me:s3cret@smtp.x.org/a@b.org"


def test_find_aoi_lists_available_names(tmp_path):
    write(tmp_path, "good", VALID.format(name="good"))
    with pytest.raises(AOIConfigError, match=r"No AOI named 'nope'.*available: good"):
        find_aoi(tmp_path, "nope")


def test_bundled_aoi_definitions_are_all_valid():
    registry = load_registry(PROJECT_ROOT / "aoi_definitions")
    assert registry.errors == {}
    assert {"demo", "suriname-northeast", "guyana-mazaruni", "peru-madre-de-dios"} <= set(
        registry.aois
    )
    for name in ("suriname-northeast", "guyana-mazaruni", "peru-madre-de-dios"):
        assert 100 < registry.aois[name].area_km2 < 5000, name
