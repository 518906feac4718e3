"""Chips of reviewed sites: the verdicts people give become the verifier's training data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.detect.harmonise import l2a_to_gallery_rgb
from asmspotter.detect.review_chips import (
    ReviewChipsError,
    load_review_chips,
    review_chips,
    save_review_chips,
)
from asmspotter.storage import Store
from fakes.review import build_review_store


@pytest.fixture()
def reviewed(tmp_path, monkeypatch):
    review = build_review_store(tmp_path / "data", tmp_path / "aois")
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(review.data_dir))
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(review.aoi_dir))
    with Store(review.database_url) as store:
        store.confirm_site("rev-0001", "field visit")
        store.dismiss_site("rev-0002", "town")
    return review


def test_export_chips_labels_each_patch_by_the_verdict(reviewed, tmp_path: Path) -> None:
    out = tmp_path / "chips.npz"
    result = CliRunner().invoke(app, ["sites", "export-chips", str(out)])
    assert result.exit_code == 0, result.output
    assert "of 2 reviewed site(s)" in result.output
    chips = load_review_chips(out)
    assert set(chips.site_id.tolist()) == {"rev-0001", "rev-0002"}
    assert (chips.label[chips.site_id == "rev-0001"] == 1).all()
    assert (chips.label[chips.site_id == "rev-0002"] == 0).all()
    assert chips.rgb.shape[1:] == (48, 48, 3) and chips.rgb.dtype == np.uint8

    # A small site is one patch centred on it, cut from the newest composite it was seen
    # in and encoded as a run scores it: the same pixels as reading the composite directly.
    with Store(reviewed.database_url) as store:
        last = store.site_history("rev-0002")[-1]
        composite = Path(store.run(last.run_id).composite_path)
    from shapely import wkt

    centre = wkt.loads(last.geometry_wkt).centroid
    (patch,) = chips.rgb[chips.site_id == "rev-0002"]
    with rasterio.open(composite) as src:
        row, col = src.index(centre.x, centre.y)
        names = list(src.descriptions)

        def gallery_rgb_at(r0: int, c0: int) -> np.ndarray:
            window = rasterio.windows.Window(c0, r0, 48, 48)
            red, green, blue = (
                src.read(names.index(band) + 1, window=window).astype(np.float32)
                for band in ("red", "green", "blue")
            )
            return l2a_to_gallery_rgb(red, green, blue).astype(int)

        # Centred on the site to the pixel (the outline's box centre may round either way).
        offsets = [
            np.abs(patch.astype(int) - gallery_rgb_at(row - 24 + dr, col - 24 + dc)).max()
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
        ]
    assert min(offsets) <= 1

    again = CliRunner().invoke(app, ["sites", "export-chips", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_an_older_composite_serves_when_the_newest_is_gone_and_none_left_is_an_error(
    reviewed, tmp_path: Path, caplog
) -> None:
    with Store(reviewed.database_url) as store:
        history = store.site_history("rev-0002")
        composites = [Path(store.run(o.run_id).composite_path) for o in history]
        composites[-1].unlink()
        chips = review_chips(store)
        assert set(chips.site_id.tolist()) == {"rev-0001", "rev-0002"}
        for path in composites[:-1]:
            path.unlink()
        assert len(review_chips(store)) == 0
    assert "rev-0002: no composite left on disk" in caplog.text
    result = CliRunner().invoke(app, ["sites", "export-chips", str(tmp_path / "c.npz")])
    assert result.exit_code == 1 and "no reviewed site" in result.output


def test_a_chips_file_is_checked_when_loaded(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "bad.npz", rgb=np.zeros((2, 48, 48), np.uint8), label=[0, 1], site_id=["a", "b"]
    )
    with pytest.raises(ReviewChipsError, match=r"bad\.npz: chips must be uint8"):
        load_review_chips(tmp_path / "bad.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(ReviewChipsError, match=r"text\.npz: not a review chips file"):
        load_review_chips(tmp_path / "text.npz")
    chips = load_review_chips(
        save_review_chips(
            review_chips_like(np.full((1, 48, 48, 3), 7, np.uint8), [1]), tmp_path / "ok.npz"
        )
    )
    assert chips.label.tolist() == [1] and int(chips.rgb.max()) == 7


def review_chips_like(rgb, labels):
    from asmspotter.detect.review_chips import ReviewChips

    return ReviewChips(
        rgb=rgb, label=np.asarray(labels, np.int8), site_id=np.asarray(["x"] * len(labels))
    )
