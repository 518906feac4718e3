"""Tests of chip rendering for training (asmspotter.detect.chips) and the training device.

Rendering: the same chips whatever the number of worker processes or the block size,
an exact share of hard look-alike chips, and a test split that is what
``asmspotter model evaluate`` replays. Device: None falls back to the CPU without CUDA,
bf16 autocast is refused off CUDA, and the card records the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from asmspotter.detect.chips import chip_seed, hard_chip_flags, render_chips
from asmspotter.detect.evaluate import generated_test_split
from asmspotter.detect.model_card import Architecture
from asmspotter.detect.train.augment import augment
from asmspotter.detect.train.config import TrainConfig
from asmspotter.detect.train.detector import train_detector
from asmspotter.detect.train.loop import resolve_training_device
from asmspotter.synthetic import render_training_pair

torch.set_num_threads(2)

CHIP = {"chip_px": 32, "resolution_m": 10.0, "mining_probability": 0.6}

TINY: dict[str, Any] = {
    "name": "tiny",
    "n_train": 8,
    "n_val": 4,
    "n_test": 3,
    "patch_px": 32,
    "epochs": 1,
    "batch_size": 8,
    "architecture": Architecture(
        base_channels=4, depth=1, upsampling="transpose", space_to_depth=2
    ),
    "seed": 5,
}


def test_rendering_is_the_same_for_any_number_of_workers_and_block_size() -> None:
    stream = np.random.SeedSequence(11)
    one = render_chips(stream, 10, **CHIP, hard_fraction=0.5, workers=1)
    two = render_chips(stream, 10, **CHIP, hard_fraction=0.5, workers=2, block_chips=3)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert one[0].shape == (10, 4, 32, 32) and one[1].shape == (10, 32, 32)
    # Chips differ from one another, and another stream gives other chips.
    assert not np.array_equal(one[0][0], one[0][1])
    other = render_chips(np.random.SeedSequence(12), 10, **CHIP, hard_fraction=0.5)
    assert not np.array_equal(one[0], other[0])


def test_each_chip_comes_from_its_own_seed() -> None:
    """Chip i depends on its index only: more chips leave the first ones unchanged."""
    stream = np.random.SeedSequence(3)
    few = render_chips(stream, 3, **CHIP)
    more = render_chips(stream, 7, **CHIP, block_chips=2)
    np.testing.assert_array_equal(few[0], more[0][:3])
    refl, mask = render_training_pair(
        np.random.default_rng(chip_seed(stream, 5)), size_px=32, resolution_m=10.0
    )
    np.testing.assert_array_equal(more[0][5], refl)
    np.testing.assert_array_equal(more[1][5], mask)
    # chip_seed neither depends on nor changes the stream's spawn count.
    stream.spawn(2)
    assert chip_seed(stream, 1).spawn_key == (1,)


@pytest.mark.parametrize(("fraction", "n_hard"), [(0.0, 0), (0.25, 3), (0.5, 5), (1.0, 10)])
def test_hard_fraction_sets_exactly_that_share_of_hard_chips(fraction: float, n_hard: int) -> None:
    stream = np.random.SeedSequence(4)
    flags = hard_chip_flags(stream, 10, fraction)
    assert flags.sum() == n_hard
    np.testing.assert_array_equal(flags, hard_chip_flags(stream, 10, fraction))


def test_mixed_chips_are_hard_exactly_where_the_flags_say() -> None:
    stream = np.random.SeedSequence(1)
    chip = {**CHIP, "chip_px": 64}  # at 32 px few hard look-alikes fit in a chip
    flags = hard_chip_flags(stream, 10, 0.5)
    standard = render_chips(stream, 10, **chip, hard_fraction=0.0)[0]
    hard = render_chips(stream, 10, **chip, hard_fraction=1.0)[0]
    mixed = render_chips(stream, 10, **chip, hard_fraction=0.5, workers=2, block_chips=4)[0]
    # Chips where the two kinds differ tell which kind the mix rendered: some of them
    # are flagged hard, some not.
    differ = np.array([not np.array_equal(standard[i], hard[i]) for i in range(10)])
    assert (differ & flags).any() and (differ & ~flags).any()
    for i in range(10):
        np.testing.assert_array_equal(mixed[i], hard[i] if flags[i] else standard[i])


def test_bad_render_arguments() -> None:
    with pytest.raises(ValueError, match="hard_fraction"):
        hard_chip_flags(1, 4, 1.5)
    with pytest.raises(ValueError, match="workers"):
        render_chips(1, 4, **CHIP, workers=0)


def test_device_none_falls_back_to_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_training_device(None, bf16=False) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_training_device("cuda", bf16=False)
    with pytest.raises(ValueError, match="CUDA only"):
        resolve_training_device("cpu", bf16=True)


def test_augment_transforms_each_chip_with_its_mask() -> None:
    """Grouped rotations/flips keep every chip aligned with its own mask."""
    rng = np.random.default_rng(0)
    refl = torch.from_numpy(rng.uniform(0.1, 0.5, (16, 4, 8, 8)).astype(np.float32))
    masks = refl[:, :1] > 0.3
    out, out_masks = augment(refl, masks.float(), torch.Generator().manual_seed(1))
    assert out.shape == refl.shape and out_masks.shape == masks.shape
    gen = torch.Generator().manual_seed(1)
    ks = torch.randint(0, 4, (16,), generator=gen).tolist()
    flips = torch.rand(16, generator=gen).lt(0.5).tolist()
    for i in range(16):
        expected = torch.rot90(masks[i], ks[i], dims=(1, 2))
        if flips[i]:
            expected = torch.flip(expected, dims=(2,))
        assert torch.equal(out_masks[i].bool(), expected)
    assert len({tuple(x) for x in zip(ks, flips, strict=True)}) > 3


def test_mixed_training_tests_on_both_evaluation_splits(tmp_path: Path) -> None:
    card = train_detector(TrainConfig(out_dir=tmp_path, **{**TINY, "hard_fraction": 0.5}))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert card.training.device is not None and card.training.device.startswith(expected)
    # The card's test split is both evaluation splits: 3 standard + 3 hard chips.
    assert card.training.n_test_chips == 3
    assert card.metrics.n_test_chips == 6
    assert "50%" in card.training.data
    # What `model evaluate` replays has the card's chip size and count.
    chips = list(generated_test_split(card, 10.0, hard_lookalikes=True))
    assert len(chips) == 3 and chips[0][0].shape == (4, 32, 32)


def test_bad_hard_fraction_and_bf16_off_cuda_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hard_fraction"):
        TrainConfig(out_dir=tmp_path, **{**TINY, "hard_fraction": 1.5})
    with pytest.raises(ValueError, match="bf16"):
        train_detector(TrainConfig(out_dir=tmp_path, **{**TINY, "device": "cpu", "bf16": True}))
    assert not any(tmp_path.iterdir())  # refused before rendering or writing anything
