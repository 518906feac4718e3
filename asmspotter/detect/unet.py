"""The U-Net that turns a 6-band composite tile into a mining logit per pixel.

A classic encoder-decoder U-Net (Ronneberger et al. 2015, https://arxiv.org/abs/1505.04597)
with BatchNorm + ReLU double convolutions and ``same`` padding, so the output has the
input's height and width. The input height and width must be multiples of
``2 ** depth``; :mod:`asmspotter.detect.infer` pads tiles to that.

The architecture is described in the model card (:mod:`asmspotter.detect.model_card`)
by ``base_channels``, ``depth`` and ``upsampling``; :mod:`asmspotter.detect.infer` builds
the net from the card and loads its weights.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Upsampling = Literal["bilinear", "transpose"]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU.

    The convolutions have no bias because BatchNorm right after adds one.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class _Up(nn.Module):
    """Upsample by 2, concatenate the skip connection, double conv."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, upsampling: Upsampling
    ) -> None:
        super().__init__()
        self.up: nn.Module
        if upsampling == "bilinear":
            # Bilinear upsampling has no weights; the following conv mixes channels.
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            up_channels = in_channels
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            up_channels = in_channels // 2
        self.conv = DoubleConv(up_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x``, join it with ``skip`` along channels and convolve."""
        x = self.up(x)
        return self.conv(torch.cat([skip, x], dim=1))  # type: ignore[no-any-return]


class UNet(nn.Module):
    """U-Net with ``depth`` down-sampling steps and one output logit per pixel.

    Channels double at each level: ``base_channels * 2**i`` for ``i = 0..depth``.
    With the defaults (6 inputs, base 16, depth 4, bilinear) the net has about
    1.9 million parameters (7.5 MB in float32).

    Args:
        in_channels: Number of input bands (6: red, green, blue, nir, ndwi, ndvi).
        out_channels: Number of output logits per pixel (1: mining).
        base_channels: Channels of the first level.
        depth: Number of 2x down-sampling steps; inputs must be multiples of ``2**depth``
            pixels in height and width.
        upsampling: ``"bilinear"`` (no weights) or ``"transpose"`` (learned 2x2
            transposed convolution).

    Raises:
        ValueError: If a size argument is not positive or ``upsampling`` is unknown.
    """

    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        upsampling: Upsampling = "bilinear",
    ) -> None:
        super().__init__()
        if min(in_channels, out_channels, base_channels) < 1 or depth < 1:
            raise ValueError(
                "UNet: in_channels, out_channels, base_channels and depth must be >= 1, got "
                f"{in_channels}, {out_channels}, {base_channels}, {depth}."
            )
        if upsampling not in ("bilinear", "transpose"):
            raise ValueError(
                f"UNet: upsampling must be 'bilinear' or 'transpose', got {upsampling!r}."
            )
        self.in_channels = in_channels
        self.depth = depth
        channels = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, channels[0])
        self.pool = nn.MaxPool2d(2)
        self.downs = nn.ModuleList(DoubleConv(channels[i], channels[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(
            _Up(channels[i + 1], channels[i], channels[i], upsampling)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], out_channels, kernel_size=1)

    @property
    def size_multiple(self) -> int:
        """Height and width of an input must be multiples of this many pixels."""
        return int(2**self.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (N, out_channels, H, W) for inputs (N, in_channels, H, W)."""
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)  # type: ignore[no-any-return]
