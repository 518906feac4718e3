"""Training from a folder of scenes + GeoJSON labels, evaluating it, the baseline, bf16.

CI-sized: two 256 px scenes of one generated landscape, 32 px patches, a base-8
depth-3 U-Net, 2 epochs (a few seconds on 2 cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scene_builders import build_scene_folder
from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.detect.baseline import baseline_score
from asmspotter.detect.evaluate import check_bf16, evaluate_model, parse_data_spec
from asmspotter.detect.metrics import pixel_metrics
from asmspotter.detect.model_card import Architecture, load_card
from asmspotter.detect.predict import predict_probabilities
from asmspotter.detect.runtime import load_model
from asmspotter.detect.train.config import TrainConfig
from asmspotter.detect.train.detector import train_detector
from asmspotter.synthetic import render_training_pair

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    scenes = tmp_path_factory.mktemp("scenes")
    build_scene_folder(scenes, seed=2, n_scenes=2)
    model_dir = tmp_path_factory.mktemp("models") / "tiny-scenes"
    config = TrainConfig(
        out_dir=model_dir,
        name="tiny-scenes",
        scene_dir=scenes,
        labels_path=scenes / "labels.geojson",
        patch_px=32,
        block_px=64,
        n_train=48,
        epochs=2,
        batch_size=16,
        architecture=Architecture(
            base_channels=8, depth=2, upsampling="transpose", space_to_depth=2
        ),
        seed=0,
    )
    train_detector(config)
    return scenes, model_dir


def test_training_from_scenes_writes_a_card(trained: tuple[Path, Path]) -> None:
    _, model_dir = trained
    card = load_card(model_dir)
    assert (model_dir / "weights.pt").is_file()
    assert card.resolution_m == pytest.approx(10.0)
    assert "spatial split in blocks of 64 px" in card.training.data
    assert "2 scenes" in card.training.data
    assert "resolution jitter" in card.training.augmentation
    assert card.training.n_test_chips > 0 and card.training.n_val_chips > 0
    assert 0 <= card.metrics.pixel_iou <= 1


def test_evaluate_folder_via_cli_records_card(trained: tuple[Path, Path], tmp_path: Path) -> None:
    scenes, model_dir = trained
    result = CliRunner().invoke(
        app, ["model", "evaluate", str(model_dir), str(scenes), "--out-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "spectral baseline" in result.output, result.output
    assert "threshold maximising pixel F1" in result.output, result.output
    card = json.loads((model_dir / "model_card.json").read_text())
    (evaluation,) = card["evaluations"]
    assert evaluation["data"] == str(scenes)
    assert evaluation["n_items"] == 2
    assert evaluation["n_pixels"] == 2 * 256 * 256
    for key in ("pixel_iou", "pixel_f1", "object_f1", "object_precision", "area_error_pct"):
        assert key in evaluation["model"] and key in evaluation["baseline"]
    assert evaluation["software"]["torch"] == torch.__version__
    assert Path(evaluation["pr_curve_png"]).read_bytes()[:4] == b"\x89PNG"


def test_cli_train_needs_labels_with_scenes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model", "train", "x", "--scenes", str(tmp_path)])
    assert result.exit_code != 0
    assert "--labels" in result.output


def test_parse_data_spec() -> None:
    assert parse_data_spec("generated", 10.0) == ("generated", 10.0)
    assert parse_data_spec("generated-hard:3", 10.0) == ("generated-hard", 3.0)
    assert parse_data_spec("data/x", 10.0)[0] == "folder"
    with pytest.raises(ValueError, match="generated:<pixel size"):
        parse_data_spec("generated:abc", 10.0)


def test_baseline_finds_generated_mines_but_not_forest() -> None:
    """On mining chips the rule catches most mine pixels; pure forest scores 0."""
    rng = np.random.default_rng(5)
    truth, pred = [], []
    for _ in range(6):
        refl, mask = render_training_pair(rng, size_px=96, mining_probability=1.0)
        truth.append(mask)
        pred.append(baseline_score(refl, 10.0) >= 0.5)
    scores = pixel_metrics(np.stack(pred), np.stack(truth))
    assert scores["recall"] > 0.5, scores
    assert scores["iou"] > 0.2, scores
    forest = np.broadcast_to(
        np.array([0.02, 0.045, 0.025, 0.3], np.float32)[:, None, None], (4, 40, 40)
    )
    assert baseline_score(forest).max() == 0.0
    with pytest.raises(ValueError, match="blue, green, red, nir"):
        baseline_score(np.zeros((3, 4, 4)))


def test_bf16_path_close_to_fp32(trained: tuple[Path, Path]) -> None:
    _, model_dir = trained
    model = load_model(model_dir, device="cpu")
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(6, 64, 64)).astype(np.float32)
    p32 = predict_probabilities(feats, model, precision="fp32")
    p16 = predict_probabilities(feats, model, precision="bf16")
    assert p16.dtype == np.float32
    assert np.abs(p32 - p16).max() < 0.1


def test_check_bf16_records_choice(trained: tuple[Path, Path]) -> None:
    _, model_dir = trained
    card = load_card(model_dir)
    # A tiny generated split: patch the card's test size down for speed.
    small = card.model_copy(
        update={"training": card.training.model_copy(update={"n_test_chips": 4})}
    )
    from asmspotter.detect.model_card import save_card

    save_card(small, model_dir)
    check = check_bf16(model_dir, "generated")
    card = load_card(model_dir)
    assert card.precision_check == check
    assert card.precision in ("fp32", "bf16")
    if abs(check.bf16_iou - check.fp32_iou) > 0.01 or not check.bf16_supported:
        assert card.precision == "fp32"


def test_evaluate_generated_split(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, model_dir = trained
    evaluation = evaluate_model(model_dir, "generated", out_dir=tmp_path, update_card=False)
    assert evaluation.n_items == load_card(model_dir).training.n_test_chips
    assert evaluation.baseline is not None
    assert 0 <= evaluation.best_f1_threshold <= 1


def test_scene_folder_without_labels_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="needs labels: give a GeoJSON or LabelBox NDJSON"):
        TrainConfig(out_dir=tmp_path / "model", name="x", scene_dir=tmp_path)
    assert not (tmp_path / "model").exists()
