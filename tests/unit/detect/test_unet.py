"""Tests of asmspotter.detect.unet: shapes, sizes, argument checks."""

from __future__ import annotations

import pytest
import torch

from asmspotter.detect.unet import UNet

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
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)  # type: ignore[arg-type]
