"""CLI: ``sites confirm``, ``sites export-positives`` and ``web`` (its start-up checks)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.storage import Store
from fakes.review import build_review_store


def review_env(tmp_path, monkeypatch):
    review = build_review_store(tmp_path / "data", tmp_path / "aois")
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(review.data_dir))
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(review.aoi_dir))
    return review


def test_confirm_writes_positives_and_dismiss_takes_the_site_out_again(tmp_path, monkeypatch):
    review = review_env(tmp_path, monkeypatch)
    runner = CliRunner()
    result = runner.invoke(app, ["sites", "confirm", "rev-0001", "--reason", "field visit"])
    assert result.exit_code == 0, result.output
    positives = review.data_dir / "training" / "positives.geojson"
    assert str(positives) in result.output
    assert [f["id"] for f in json.loads(positives.read_text())["features"]] == ["rev-0001"]

    result = runner.invoke(app, ["sites", "dismiss", "rev-0001", "--reason", "town"])
    assert result.exit_code == 0, result.output
    assert json.loads(positives.read_text())["features"] == []
    with Store(review.database_url) as store:
        assert [r.decision for r in store.site_reviews("rev-0001")] == ["confirmed", "dismissed"]
    negatives = review.data_dir / "training" / "negatives.geojson"
    assert [f["properties"]["site_id"] for f in json.loads(negatives.read_text())["features"]] == [
        "rev-0001"
    ]
    # Confirming it again lifts the dismissal: it leaves the negatives, joins the positives.
    result = runner.invoke(app, ["sites", "confirm", "rev-0001", "--reason", "field visit"])
    assert result.exit_code == 0, result.output
    assert json.loads(negatives.read_text())["features"] == []
    assert [f["id"] for f in json.loads(positives.read_text())["features"]] == ["rev-0001"]

    empty = runner.invoke(app, ["sites", "confirm", "rev-0002", "--reason", " "])
    assert empty.exit_code == 1 and "give a reason for confirming" in empty.output


def test_export_positives_refuses_to_overwrite(tmp_path, monkeypatch):
    review_env(tmp_path, monkeypatch)
    runner = CliRunner()
    runner.invoke(app, ["sites", "confirm", "rev-0002", "--reason", "imagery"])
    out = tmp_path / "pos.geojson"
    result = runner.invoke(app, ["sites", "export-positives", "rev", str(out)])
    assert result.exit_code == 0 and "1 confirmed site(s) of rev" in result.output, result.output
    features = json.loads(out.read_text())["features"]
    assert [(f["id"], f["properties"]["class"]) for f in features] == [("rev-0002", "mining")]
    again = runner.invoke(app, ["sites", "export-positives", "rev", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_web_refuses_a_short_token_before_serving(tmp_path, monkeypatch):
    review_env(tmp_path, monkeypatch)
    monkeypatch.setenv("ASMSPOTTER_WEB_TOKEN", "abc")
    result = CliRunner().invoke(app, ["web", "--port", "1"])
    assert result.exit_code == 1, result.output
    assert "ASMSPOTTER_WEB_TOKEN" in result.output and "at least 12" in result.output
