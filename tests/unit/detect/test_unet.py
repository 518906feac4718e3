"""Tests of asmspotter.detect.unet: shapes, sizes, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asmspotter.detect.model_card import DEFAULT_ARCHITECTURE, Architecture
from asmspotter.detect.runtime import build_network
from asmspotter.detect.unet import UNet, fold_space_to_depth

torch.set_num_threads(2)


@pytest.mark.parametrize("upsampling", ["bilinear", "transpose"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_output_has_input_height_and_width(depth: int, upsampling: str) -> None:
    net = UNet(base_channels=4, depth=depth, upsampling=upsampling).eval()  # type: ignore[arg-type]
    size = 2**depth * 2
    with torch.inference_mode():
        out = net(torch.randn(2, 6, size, size * 2))
    assert out.shape == (2, 1, size, size * 2)
    assert net.size_multiple == 2**depth


@pytest.mark.parametrize("space_to_depth", [2, 4])
def test_space_to_depth_keeps_height_and_width(space_to_depth: int) -> None:
    net = UNet(base_channels=4, depth=2, upsampling="transpose", space_to_depth=space_to_depth)
    size = space_to_depth * 4
    with torch.inference_mode():
        out = net.eval()(torch.randn(2, 6, size, size * 3))
    assert out.shape == (2, 1, size, size * 3)
    assert net.size_multiple == space_to_depth * 4
    # The first conv sees every pixel of a block as its own channel.
    assert net.inc[0].in_channels == 6 * space_to_depth**2


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_host_folding_is_pixel_unshuffle_channels_last(factor: int) -> None:
    tile = np.random.default_rng(0).normal(size=(6, 16, 24)).astype(np.float32)
    folded = fold_space_to_depth(tile, factor)
    expected = torch.nn.functional.pixel_unshuffle(torch.from_numpy(tile)[None], factor)[0]
    assert folded.shape == (16 // factor, 24 // factor, 6 * factor**2)
    np.testing.assert_array_equal(folded, expected.permute(1, 2, 0).numpy())


def test_folded_input_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2, upsampling="transpose", space_to_depth=2).eval()
    tiles = np.random.default_rng(1).normal(size=(3, 6, 16, 16)).astype(np.float32)
    folded = np.stack([fold_space_to_depth(tile, 2) for tile in tiles])
    with torch.inference_mode():
        plain = net(torch.from_numpy(tiles))
        fast = net(torch.from_numpy(folded).permute(0, 3, 1, 2), folded=True)
    torch.testing.assert_close(plain, fast, atol=1e-5, rtol=1e-4)


def test_space_to_depth_output_pixels_are_not_tied_to_their_block() -> None:
    """Each pixel of a 2x2 block gets its own logit, not one logit per block."""
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=1, upsampling="transpose", space_to_depth=2).eval()
    with torch.inference_mode():
        out = net(torch.randn(1, 6, 8, 8))[0, 0]
    blocks = out.reshape(4, 2, 4, 2)
    assert not torch.allclose(blocks[:, 0, :, 0], blocks[:, 1, :, 1])


def test_shipped_layout_is_as_small_as_the_classic_one() -> None:
    """The default training layout keeps the classic net's parameter count (±10 %)."""
    classic = sum(p.numel() for p in UNet().parameters())
    shipped = build_network(DEFAULT_ARCHITECTURE, n_bands=6)
    n_params = sum(p.numel() for p in shipped.parameters())
    assert abs(n_params - classic) / classic < 0.1
    assert shipped.size_multiple == DEFAULT_ARCHITECTURE.size_multiple == 16


def test_cards_without_space_to_depth_mean_the_classic_layout() -> None:
    arch = Architecture.model_validate({"name": "unet", "base_channels": 16, "depth": 4})
    assert arch.space_to_depth == 1
    assert arch.upsampling == "bilinear"
    assert build_network(arch, n_bands=6).size_multiple == 16


def test_default_net_is_small() -> None:
    """Base 16, depth 4: under 2.5 M parameters (10 MB in float32)."""
    net = UNet()
    n_params = sum(p.numel() for p in net.parameters())
    assert 1_000_000 < n_params < 2_500_000


def test_channels_last_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2).eval()
    x = torch.randn(1, 6, 16, 16)
    with torch.inference_mode():
        plain = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        fast = net_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(plain, fast, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 0}, "depth must be >= 1"),
        ({"base_channels": 0}, "base_channels"),
        ({"upsampling": "nearest"}, "'bilinear' or 'transpose'"),
        ({"space_to_depth": 0}, "space_to_depth"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)  # type: ignore[arg-type]
