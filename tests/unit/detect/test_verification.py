"""The real-pixel verifier: gallery splits, metrics, patches, confidence and the array API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import torch
from affine import Affine
from PIL import Image
from shapely.geometry import box

from asmspotter.alerts.dispatch import events_for_channel
from asmspotter.detect.api import MODELS_DIR, detect_array, detect_change
from asmspotter.detect.change_evaluation import PairFileError, evaluate_pairs
from asmspotter.detect.gallery import (
    CHIP_PX,
    GalleryError,
    group_folds,
    load_gallery,
    sheet_group,
    sheet_label,
)
from asmspotter.detect.harmonise import PATH_REFLECTANCE, gallery_reflectance, l2a_to_gallery_rgb
from asmspotter.detect.model_card import load_card
from asmspotter.detect.patch_metrics import (
    roc_auc,
    sensitivity_specificity,
    threshold_for_specificity,
)
from asmspotter.detect.review_chips import ReviewChips, save_review_chips
from asmspotter.detect.site_verification import (
    MAX_PATCHES,
    ArrayPatches,
    candidate_threshold_for,
    confidence_level,
    confirm_candidates,
    patch_origins,
    score_sites,
    verifier_for,
)
from asmspotter.detect.verifier import PatchNet, dihedral_views, load_verifier, mean_probability
from asmspotter.detect.verifier_training import place_shift, score
from asmspotter.events import SiteEvent
from asmspotter.synthetic import render_labelled_chip
from asmspotter.track import KnownSite, TrackingThresholds, track_sites

MODELS = Path(__file__).resolve().parents[3] / "models"
FOREST = {"blue": 0.02, "green": 0.04, "red": 0.025, "nir": 0.30}


def forest_bands(size: int = 48) -> dict[str, np.ndarray]:
    return {band: np.full((size, size), value, np.float32) for band, value in FOREST.items()}


def mine_bands(seed: int) -> dict[str, np.ndarray]:
    """A 48 x 48 px generated patch centred on a mine."""
    chip = render_labelled_chip(np.random.default_rng(seed), 112, 10.0, 1.0, hard_lookalikes=False)
    rows, cols = np.nonzero(chip.mining_mask)
    r0 = min(max(int(rows.mean()) - 24, 0), 112 - 48)
    c0 = min(max(int(cols.mean()) - 24, 0), 112 - 48)
    window = chip.reflectance[:, r0 : r0 + 48, c0 : c0 + 48]
    return {"blue": window[0], "green": window[1], "red": window[2], "nir": window[3]}


# --- gallery ------------------------------------------------------------------------


def test_sheet_names_give_label_and_group() -> None:
    assert sheet_label("ACAexpanded_amazon_positives2025-08_S2L1C_clear0.75_2024") == 1
    assert sheet_label("BD_MineriaAurifera_Peru-curated2025-09_S2L1C_clear0.75_2024") == 1
    assert sheet_label("ACAexpanded_amazon_negatives2025-08_S2L1C_clear0.05_2024") == 0
    with pytest.raises(GalleryError, match="neither 'positives' nor 'negatives'"):
        sheet_label("some_sheet")
    # The two cloud filters of one sampling are one group: never on both sides of a split.
    a = sheet_group("X_negatives2025-08_S2L1C_clear0.05_2024-01-01_2025-01-01")
    b = sheet_group("X_negatives2025-08_S2L1C_clear0.75_2024-01-01_2025-01-01")
    assert a == b


def _write_sheet(path: Path, n_chips: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sheet = np.zeros((CHIP_PX * 2, CHIP_PX * 4, 3), np.uint8)  # flat cells = padding
    for i in range(n_chips):
        r, c = divmod(i, 4)
        sheet[r * CHIP_PX : (r + 1) * CHIP_PX, c * CHIP_PX : (c + 1) * CHIP_PX] = rng.integers(
            0, 255, (CHIP_PX, CHIP_PX, 3)
        )
    Image.fromarray(sheet).save(path)


def test_gallery_drops_padding_and_duplicates_and_folds_by_group(tmp_path: Path) -> None:
    for index in range(4):
        _write_sheet(tmp_path / f"S{index}_positives_S2L1C_clear0.75_x.png", 5, index)
        _write_sheet(tmp_path / f"S{index}_negatives_S2L1C_clear0.75_x.png", 6, 10 + index)
    # The same sampling's other cloud filter repeats a sheet's chips exactly.
    _write_sheet(tmp_path / "S0_negatives_S2L1C_clear0.05_x.png", 6, 10)
    gallery = load_gallery(tmp_path)
    assert len(gallery) == 4 * 5 + 4 * 6
    assert int(gallery.label.sum()) == 20
    folds = group_folds(gallery, 2)
    for group in set(gallery.group):
        assert len({int(f) for f, g in zip(folds, gallery.group, strict=True) if g == group}) == 1
    for fold in (0, 1):
        assert set(gallery.label[folds == fold].tolist()) == {0, 1}
    with pytest.raises(GalleryError, match="no PNG sheets"):
        load_gallery(tmp_path / "missing")


# --- metrics and harmonisation ------------------------------------------------------


def test_patch_metrics() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9]), labels) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2]), labels) == 0.0
    assert roc_auc(np.full(6, 0.5), labels) == 0.5
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    cut = threshold_for_specificity(scores, labels, 0.75)
    assert sensitivity_specificity(scores, labels, cut) == (1.0, 0.75)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(scores, np.ones(6, int))


def test_l2a_is_veiled_like_the_gallery_l1c() -> None:
    dark = np.zeros((4, 4), np.float32)
    rgb = l2a_to_gallery_rgb(dark, dark, dark)
    toa = gallery_reflectance(rgb)  # (3, H, W)
    # A black L2A surface looks like the gallery's hazy L1C: path reflectance, blue most.
    assert np.allclose(toa[:, 0, 0], PATH_REFLECTANCE, atol=0.002)
    assert toa[2, 0, 0] > toa[1, 0, 0] > toa[0, 0, 0]


# --- patches and levels -------------------------------------------------------------


def test_patch_origins_one_patch_for_small_site_grid_capped_for_large() -> None:
    transform = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 10_000.0)
    small = box(200, 9_000, 300, 9_100)  # 10 x 10 px
    (origin,) = patch_origins(small, transform, 48)
    assert origin == (95 - 24, 25 - 24)  # centred on rows 90..100, cols 20..30
    large = box(0, 0, 10_000, 10_000)  # 1,000 px a side
    assert len(patch_origins(large, transform, 48)) == MAX_PATCHES


def test_array_patches_pad_small_images() -> None:
    bands = forest_bands(30)
    patches = ArrayPatches(bands["red"], bands["green"], bands["blue"], Affine.identity())
    red, green, blue = patches.read_rgb(-9, -9, 48)
    assert red.shape == green.shape == blue.shape == (48, 48)
    assert np.all(red == FOREST["red"])


def test_confidence_levels_follow_card_thresholds() -> None:
    thresholds = {"high": 0.7, "highest": 0.95}
    assert confidence_level(0.2, thresholds) == "nominal"
    assert confidence_level(0.7, thresholds) == "high"
    assert confidence_level(0.99, thresholds) == "highest"
    assert confidence_level(float("nan"), thresholds) == "nominal"


def test_shipped_verifier_separates_generated_mines_from_forest() -> None:
    verifier = load_verifier(MODELS / "s2-verifier-v1")
    card = verifier.card
    assert card.n_members == 5 and card.real_evaluation.auc > 0.85
    assert card.thresholds["highest"] > card.thresholds["high"]
    mines = [mine_bands(seed) for seed in range(3)]
    forest = forest_bands()
    stack = {b: np.stack([m[b] for m in mines] + [forest[b]]) for b in ("red", "green", "blue")}
    scores = verifier.score_patches(stack["red"], stack["green"], stack["blue"])
    assert np.all(scores[:3] >= card.thresholds["high"])
    assert scores[3] < card.thresholds["high"]


# --- tracking and alert levels ------------------------------------------------------


def _detections(level: str, score: float) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "area_ha": [4.0],
            "mean_probability": [0.9],
            "verifier_score": [score],
            "confidence": [level],
        },
        geometry=[box(0, 0, 200, 200)],
        crs="EPSG:32621",
    )


def _track(detections: gpd.GeoDataFrame, known: list[KnownSite]) -> SiteEvent:
    clear = box(-1_000, -1_000, 1_000, 1_000)
    (event,) = track_sites(
        detections,
        known,
        clear_now=clear,
        clear_before=clear if known else None,
        window_end=dt.date(2024, 2, 1),
        epsg=32621,
        new_site_ids=iter(["s-1"]),
        thresholds=TrackingThresholds(),
    )
    return event


def test_high_confirmed_in_next_composite_becomes_highest() -> None:
    first = _track(_detections("high", 0.8), [])
    assert (first.kind, first.confidence, first.verifier_score) == ("new", "high", 0.8)
    known = KnownSite("s-1", first.geometry, first.area_ha, dt.date(2024, 1, 1), "active", "high")
    assert _track(_detections("high", 0.8), known=[known]).confidence == "highest"
    doubted = KnownSite("s-1", first.geometry, 4.0, dt.date(2024, 1, 1), "active", "nominal")
    assert _track(_detections("high", 0.8), known=[doubted]).confidence == "high"


def test_alert_levels_filter_verified_events_only() -> None:
    verified_nominal = _track(_detections("nominal", 0.1), [])
    verified_high = _track(_detections("high", 0.8), [])
    unverified = _track(_detections("nominal", float("nan")), [])
    assert unverified.verifier_score is None
    kept = events_for_channel([verified_nominal, verified_high, unverified], None)
    assert kept == [verified_high, unverified]


# --- in-memory API ------------------------------------------------------------------


def test_detect_array_on_a_48_px_patch() -> None:
    detection = detect_array(mine_bands(0), resolution_m=10.0)
    assert detection.probability.shape == detection.mask.shape == (48, 48)
    assert len(detection.sites) >= 1
    assert set(detection.sites["confidence"]) <= {"high", "highest"}
    assert detection.mask.any()
    empty = detect_array(forest_bands(), resolution_m=10.0)
    assert empty.sites.empty and not empty.mask.any()


def test_detect_array_runs_the_shipped_bf16_card_in_fp32_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch, precision_spy: Callable[[object, str], list[str]]
) -> None:
    """The shipped card picks bf16; on a CPU without it both networks run in fp32."""
    from asmspotter.detect import api, runtime

    assert load_card(MODELS_DIR / "s2-unet-v1").precision == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    unet = precision_spy(api, "predict_probabilities")
    verifier = precision_spy(api, "verifier_for")
    detection = detect_array(mine_bands(0), resolution_m=10.0)
    assert unet == ["fp32"] and verifier == ["fp32"]
    assert detection.mask.any()


def test_detect_change_raises_a_new_mine_and_not_an_unchanged_forest() -> None:
    change = detect_change(forest_bands(), mine_bands(1), resolution_m=10.0)
    assert [e.kind for e in change.raised] == ["new"]
    assert change.raised[0].confidence in ("high", "highest")
    assert detect_change(forest_bands(), forest_bands(), resolution_m=10.0).raised == []
    # Seen in both images: the same site, not a new one.
    same = detect_change(mine_bands(1), mine_bands(1), resolution_m=10.0)
    assert [e.kind for e in same.events] == ["unchanged"] and same.raised == []
    # Both outlines were cut at the card's threshold, so their growth was compared.
    cut = same.after.sites["outline_threshold"].iloc[0]
    assert cut == pytest.approx(load_card(MODELS_DIR / "s2-unet-v1").threshold)
    assert same.events[0].outline_threshold == pytest.approx(cut)
    assert same.events[0].growth_ha is not None


def test_detect_change_refuses_images_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="share one"):
        detect_change(forest_bands(48), forest_bands(40), resolution_m=10.0)


# --- candidates below the U-Net threshold -----------------------------------------


class _BrightnessVerifier:
    """Scores a patch by its red reflectance: tailings (red > 0.1) are mines."""

    card = SimpleNamespace(patch_px=8, thresholds={"high": 0.5, "highest": 0.9})

    def score_patches(self, red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
        return np.where(red.mean(axis=(1, 2)) > 0.1, 0.95, 0.1).astype(np.float32)


def _frame(boxes: list, score: float | None = None) -> gpd.GeoDataFrame:
    columns = {"area_ha": [b.area / 10_000 for b in boxes], "mean_probability": [0.3] * len(boxes)}
    if score is not None:
        columns |= {"verifier_score": [score] * len(boxes), "confidence": ["highest"] * len(boxes)}
    return gpd.GeoDataFrame(columns, geometry=boxes, crs="EPSG:32621")


def test_candidates_are_kept_only_where_the_verifier_confirms_them() -> None:
    red = np.full((40, 40), 0.03, np.float32)
    red[24:32, 24:32] = 0.2  # bright tailings, bottom right
    red[4:12, 6:14] = 0.2  # bright under `touching`: only the overlap rule can drop it
    transform = Affine(10.0, 0, 0, 0, -10.0, 400.0)
    patches = ArrayPatches(red, red, red, transform)
    detection = box(0, 300, 80, 400)  # top left, the U-Net's own site
    touching = box(70, 300, 120, 350)  # the same site seen at the lower threshold
    tailings = box(240, 80, 320, 160)
    forest = box(240, 300, 320, 380)
    kept = confirm_candidates(
        _frame([detection], score=0.97),
        _frame([touching, tailings, forest]),
        patches,
        _BrightnessVerifier(),  # type: ignore[arg-type]
    )
    assert [g.bounds for g in kept.geometry] == [detection.bounds, tailings.bounds]  # by area
    assert list(kept["confidence"]) == ["highest", "highest"]
    assert list(kept["verifier_score"]) == pytest.approx([0.97, 0.95])


class _PatchMeanVerifier(_BrightnessVerifier):
    """Scores a patch by its mean red, and counts the patches of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score_patches(self, red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
        self.calls.append(len(red))
        return red.mean(axis=(1, 2)).astype(np.float32)


def test_sites_are_scored_in_bounded_batches_with_the_same_scores() -> None:
    red = np.random.default_rng(2).random((200, 200), dtype=np.float32)
    patches = ArrayPatches(red, red, red, Affine(10.0, 0, 0, 0, -10.0, 2000.0))
    # Two sites of 1 km (a grid of patches each) and a small one (one patch).
    sites = [box(0, 1000, 1000, 2000), box(1000, 0, 2000, 1000), box(900, 900, 960, 960)]
    at_once, in_threes = _PatchMeanVerifier(), _PatchMeanVerifier()
    expected = score_sites(sites, patches, at_once)  # type: ignore[arg-type]
    batched = score_sites(sites, patches, in_threes, patches_per_batch=3)  # type: ignore[arg-type]
    assert len(at_once.calls) == 1 and at_once.calls[0] > 9
    assert max(in_threes.calls) == 3 and sum(in_threes.calls) == at_once.calls[0]
    assert batched == pytest.approx(expected)
    # A site's score is its highest patch, even when its patches fall in two batches.
    assert len(set(expected.tolist())) == 3


class _RecordingPatches(ArrayPatches):
    """Array patches that remember where each read started."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.origins: list[tuple[int, int]] = []

    def read_rgb(self, row: int, col: int, size: int) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        self.origins.append((row, col))
        return super().read_rgb(row, col, size)


def test_patches_are_read_in_block_order_and_scored_as_in_site_order() -> None:
    red = np.random.default_rng(4).random((1200, 1200), dtype=np.float32)
    transform = Affine(10.0, 0, 0, 0, -10.0, 12000.0)
    patches = _RecordingPatches(red, red, red, transform)
    # Largest first, as sites come: bottom right, then top right, then top left.
    sites = [box(9000, 0, 11000, 2000), box(9000, 11000, 9400, 11400), box(0, 11000, 400, 11400)]
    scores = score_sites(sites, patches, _PatchMeanVerifier())  # type: ignore[arg-type]

    rows_of_blocks = [(row // 512, col) for row, col in patches.origins]
    assert rows_of_blocks == sorted(rows_of_blocks)
    assert patches.origins[0][1] < 100  # the top-left site is read first
    plain = ArrayPatches(red, red, red, transform)
    per_site = [
        max(float(plain.read_rgb(r, c, 8)[0].mean()) for r, c in patch_origins(g, transform, 8))
        for g in sites
    ]
    assert scores == pytest.approx(per_site)


def test_place_shift_changes_colour_scale_and_sharpness_within_the_gallery_range() -> None:
    # A chip of 4 px stripes: zoom changes the stripe width, blur softens the edges.
    stripes = np.where((np.arange(CHIP_PX) // 4) % 2 == 0, 0.05, 0.2).astype(np.float32)
    chips = np.broadcast_to(stripes, (400, 3, CHIP_PX, CHIP_PX)).copy()
    shifted = place_shift(chips, np.random.default_rng(1))
    assert shifted.shape == chips.shape and shifted.dtype == np.float32
    assert shifted.min() >= 0.0 and shifted.max() <= 0.3
    assert np.array_equal(shifted, place_shift(chips, np.random.default_rng(1)))  # seeded
    # Per-band gains: the bands of one chip no longer agree, by at most 8 % each.
    band_means = shifted.mean(axis=(2, 3)) / chips.mean(axis=(2, 3))
    assert np.ptp(band_means, axis=1).max() > 0.02
    # Zoom: some chips' stripes no longer sit where they were (columns moved).
    moved = np.abs(shifted[:, 0] / band_means[:, :1, None] - chips[:, 0]).mean(axis=(1, 2))
    assert 0.2 < float(np.mean(moved > 0.01)) < 0.9
    # Blur: about a quarter of the chips lose contrast at the stripes' edges.
    contrast = np.abs(np.diff(shifted[:, 0, 24, 8:40], axis=-1)).max(axis=-1)
    assert float(np.mean(contrast < 0.9 * contrast.max())) > 0.1


def test_candidate_threshold_needs_a_verifier_and_a_higher_threshold_in_use() -> None:
    verifier = _BrightnessVerifier()
    assert candidate_threshold_for(0.2, 0.55, verifier) == 0.2  # type: ignore[arg-type]
    assert candidate_threshold_for(0.2, 0.55, None) is None
    assert candidate_threshold_for(None, 0.55, verifier) is None  # type: ignore[arg-type]
    # An AOI that lowers its threshold below the candidates' has no candidates.
    assert candidate_threshold_for(0.2, 0.15, verifier) is None  # type: ignore[arg-type]


class _TopLeftPixel(torch.nn.Module):
    """A 'net' that looks at one corner only: as orientation-bound as a net can be."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * x[:, 0, 0, 0] - 5


def test_eight_views_make_a_score_independent_of_the_patch_orientation() -> None:
    patch = np.random.default_rng(0).random((1, 3, 6, 6), dtype=np.float32)
    views = dihedral_views(patch, 8)
    assert len({v.tobytes() for v in views}) == 8  # the square's eight symmetries
    nets = (_TopLeftPixel(),)
    turned = np.ascontiguousarray(np.rot90(patch, 1, axes=(2, 3)))
    mirrored = np.ascontiguousarray(patch[..., ::-1])
    one_view = [mean_probability(nets, p, 1)[0] for p in (patch, turned, mirrored)]
    eight_views = [mean_probability(nets, p, 8)[0] for p in (patch, turned, mirrored)]
    assert np.ptp(one_view) > 0.05  # one view sees a different corner each time...
    assert np.ptp(eight_views) < 1e-6  # ...eight views see all four, whatever the turn
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        dihedral_views(patch, 3)


def test_folded_batch_norms_and_stacked_views_score_as_the_plain_members() -> None:
    """The scoring path (folded batch norms, views in one batch) gives the members' scores."""
    torch.manual_seed(0)
    nets = tuple(PatchNet(4).eval() for _ in range(2))
    for net in nets:  # batch norms that do something: statistics far from 0 and 1
        for layer in net.features:
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
    inputs = np.random.default_rng(1).random((5, 3, CHIP_PX, CHIP_PX), dtype=np.float32)
    with torch.inference_mode():
        plain = np.mean(
            [
                torch.sigmoid(net(torch.from_numpy(view))).numpy()
                for view in dihedral_views(inputs, 8)
                for net in nets
            ],
            axis=0,
        )
    # batch_size 16 = two patches of 8 views per batch: three batches, the last one short.
    assert mean_probability(nets, inputs, 8, batch_size=16) == pytest.approx(plain, abs=1e-6)
    bf16 = mean_probability(nets, inputs, 8, batch_size=16, precision="bf16")
    assert np.abs(bf16 - plain).max() < 0.02 and not np.array_equal(bf16, plain)


def test_a_run_scores_sites_in_its_own_precision() -> None:
    models = Path(__file__).resolve().parents[3] / "models"
    fp32 = verifier_for(models / "s2-unet-v1", "s2-verifier-v1")
    bf16 = verifier_for(models / "s2-unet-v1", "s2-verifier-v1", "bf16")
    assert fp32 is not None and bf16 is not None
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert bf16.members is fp32.members  # one loaded ensemble, two precisions
    bands = mine_bands(3)
    patches = [bands[b][None] for b in ("red", "green", "blue")]
    assert bf16.score_patches(*patches)[0] == pytest.approx(
        fp32.score_patches(*patches)[0], abs=0.02
    )


# --- evaluation of alerts on labelled pairs -----------------------------------------


def _write_pair(path: Path, before: dict, after: dict, label: int) -> Path:
    stack = [
        np.stack([image[b] for b in ("blue", "green", "red", "nir")]) for image in (before, after)
    ]
    np.savez(path, before=stack[0], after=stack[1], label=label)
    return path


def test_alerts_are_measured_on_labelled_pairs_as_a_run_raises_them(tmp_path: Path) -> None:
    pairs = [
        _write_pair(tmp_path / "mine-1.npz", forest_bands(), mine_bands(1), 1),
        _write_pair(tmp_path / "mine-2.npz", forest_bands(), mine_bands(2), 1),
        _write_pair(tmp_path / "forest.npz", forest_bands(), forest_bands(), 0),
        _write_pair(tmp_path / "same-mine.npz", mine_bands(1), mine_bands(1), 0),
    ]
    result = evaluate_pairs(pairs)
    by_name = {Path(o.name).stem: o for o in result.outcomes}
    assert by_name["mine-1"].raised and by_name["mine-2"].raised
    assert by_name["mine-1"].score >= 0.7  # the verifier's score of the new site
    assert not by_name["forest"].raised and by_name["forest"].score == 0.0
    assert not by_name["same-mine"].raised  # seen before: unchanged, no alert
    assert (result.sensitivity, result.specificity, result.auc) == (1.0, 1.0, 1.0)
    assert "4 pairs (2 mining, 2 other)" in result.summary()
    # Digital numbers with their scale give the same outcome.
    with np.load(pairs[0]) as data:
        np.savez(
            tmp_path / "dn.npz", before=data["before"] * 1e4, after=data["after"] * 1e4, label=1
        )
    assert evaluate_pairs([tmp_path / "dn.npz"], scale=1e-4).outcomes[0].raised


def test_a_malformed_pair_file_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", before=np.zeros((3, 8, 8)), after=np.zeros((3, 8, 8)), label=1)
    with pytest.raises(PairFileError, match=r"bad\.npz.*blue, green, red, nir"):
        evaluate_pairs([tmp_path / "bad.npz"])
    np.savez(tmp_path / "nolabel.npz", before=np.zeros((4, 8, 8)))
    with pytest.raises(PairFileError, match=r"nolabel\.npz: no array named after, label"):
        evaluate_pairs([tmp_path / "nolabel.npz"])
    np.savez(
        tmp_path / "twolabels.npz",
        before=np.zeros((4, 8, 8)),
        after=np.zeros((4, 8, 8)),
        label=[1, 0],
    )
    with pytest.raises(PairFileError, match=r"twolabels\.npz: label must be one number"):
        evaluate_pairs([tmp_path / "twolabels.npz"])


def test_verifier_script_trains_then_rescores_in_more_views(tmp_path: Path) -> None:
    """`train_verifier.py` writes members and a card; `--rescore` keeps the members."""
    import importlib.util

    script = Path(__file__).resolve().parents[3] / "scripts/train_verifier.py"
    spec = importlib.util.spec_from_file_location("train_verifier", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for index in range(4):
        _write_sheet(gallery / f"S{index}_positives_S2L1C_clear0.75_x.png", 5, index)
        _write_sheet(gallery / f"S{index}_negatives_S2L1C_clear0.75_x.png", 6, 10 + index)
    out = tmp_path / "verifier"
    common = ["--gallery", str(gallery), "--out-dir", str(out), "--folds", "2", "--threads", "1"]
    reviewed = save_review_chips(
        ReviewChips(
            rgb=np.full((3, CHIP_PX, CHIP_PX, 3), 90, np.uint8),
            label=np.array([1, 0, 0], np.int8),
            site_id=np.array(["a-0001", "a-0002", "a-0002"]),
        ),
        tmp_path / "reviewed.npz",
    )
    tiny = ["--threads", "1", "--epochs", "1", "--generated", "0", "--width", "4"]
    module.main([*common, *tiny, "--views", "1", "--extra-chips", str(reviewed)])
    trained = load_verifier(out)
    assert "+ 3 chips of reviewed sites from reviewed.npz (1 confirmed, 2 dismissed)" in str(
        trained.card.training["data"]
    )
    # The yardstick stays on gallery chips alone: one score per gallery chip.
    assert np.load(out / "out_of_fold.npz")["score"].shape == (44,)
    assert trained.card.test_time_views == 1 and trained.card.n_members == 2
    weights = (out / "member_0.pt").read_bytes()
    module.main([*common, "--rescore", "--views", "8", "--version", "1.1.0"])
    rescored = load_verifier(out)
    assert (out / "member_0.pt").read_bytes() == weights  # no training
    assert rescored.card.test_time_views == 8 and rescored.card.version == "1.1.0"
    assert rescored.card.width == 4 and "epochs" in rescored.card.training
    oof = np.load(out / "out_of_fold.npz")
    assert oof["score"].shape == (44,) and np.isfinite(oof["score"]).all()
    with pytest.raises(SystemExit, match="one member per fold"):
        module.main([*common, "--rescore", "--folds", "3"])

    # A second seed on the same folds joins the ensemble: each chip is then scored by the
    # mean of the two members that never saw its sheet group.
    other = tmp_path / "seed7"
    other_args = ["--gallery", str(gallery), "--out-dir", str(other), "--folds", "2"]
    module.main([*other_args, *tiny, "--seed", "7", "--views", "1"])
    module.main([*common, "--add-members", str(other), "--views", "1", "--version", "1.2.0"])
    joined = load_verifier(out)
    assert joined.card.n_members == 4 and joined.card.version == "1.2.0"
    assert joined.card.training["seeds"] == [0, 7]
    assert joined.card.training["members_per_fold"] == 2
    assert (out / "member_0.pt").read_bytes() == weights
    copied = torch.load(out / "member_2.pt", weights_only=True)
    original = torch.load(other / "member_0.pt", weights_only=True)
    assert all(torch.equal(copied[key], original[key]) for key in original)
    ensemble = np.load(out / "out_of_fold.npz")["score"]
    fold_of = np.load(out / "out_of_fold.npz")["fold"]
    added = np.load(other / "out_of_fold.npz")["score"]
    assert np.isfinite(ensemble).all() and not np.allclose(ensemble, added)
    # The mean of its fold's two members, by hand, for one chip of each fold.
    chips = load_gallery(gallery).rgb
    for fold in (0, 1):
        chip = int(np.flatnonzero(fold_of == fold)[0])
        by_member = [score((joined.members[k],), chips[chip : chip + 1]) for k in (fold, fold + 2)]
        assert ensemble[chip] == pytest.approx(float(np.mean(by_member)), abs=1e-6)
    # Members trained on other folds are refused: they saw chips they would judge.
    with pytest.raises(SystemExit, match="one member per fold"):
        module.main([*common, "--add-members", str(other), "--folds", "3"])

    # --check-precision only records bf16 against fp32 in the card: members unchanged.
    module.main([*common, "--check-precision", "30"])
    checked = load_verifier(out)
    check = checked.card.precision_check
    assert check is not None and check.n_chips == 30
    assert set(check.level_changes) == {"high", "highest"}
    assert 0 <= check.max_abs_score_diff < 0.05
    assert checked.card.version == "1.2.0" and checked.card.n_members == 4
    assert (out / "member_0.pt").read_bytes() == weights
