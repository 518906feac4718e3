"""The U-Net that turns a 6-band composite tile into a mining logit per pixel.

A classic encoder-decoder U-Net (Ronneberger et al. 2015, https://arxiv.org/abs/1505.04597)
with BatchNorm + ReLU double convolutions and ``same`` padding, so the output has the
input's height and width. The input height and width must be multiples of
``2 ** depth``; :mod:`asmspotter.detect.predict` pads tiles to that.

With ``space_to_depth=2`` the net first folds each 2x2 block of pixels into channels
(:func:`torch.nn.functional.pixel_unshuffle`, lossless: 6 bands become 24 channels at
half resolution), runs the U-Net there, and unfolds 4 logits per half-resolution pixel
back to full resolution at the end (:func:`~torch.nn.functional.pixel_shuffle`). No
layer then works on thin 16-channel maps at full resolution, where a CPU spends most of
its time moving memory (skip concatenation, upsampling, pooling) rather than
multiplying: the shipped models run about 1.9x faster for the same parameter count,
at 75-86 % of the machine's bf16 GEMM rate (``benchmarks/inference.py``).

The architecture is described in the model card (:mod:`asmspotter.detect.model_card`)
by ``base_channels``, ``depth``, ``upsampling`` and ``space_to_depth``;
:mod:`asmspotter.detect.runtime` builds the net from the card and loads its weights.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
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
    1.9 million parameters (7.5 MB in float32); the shipped models' layout (base 32,
    depth 3, transpose, space-to-depth 2) has about as many.

    Args:
        in_channels: Number of input bands (6: red, green, blue, nir, ndwi, ndvi).
        out_channels: Number of output logits per pixel (1: mining).
        base_channels: Channels of the first level.
        depth: Number of 2x down-sampling steps; inputs must be multiples of ``2**depth``
            pixels in height and width.
        upsampling: ``"bilinear"`` (no weights) or ``"transpose"`` (learned 2x2
            transposed convolution).
        space_to_depth: Fold ``space_to_depth`` x ``space_to_depth`` pixel blocks into
            channels before the first level and unfold the logits after the head
            (1: off). Inputs must then be multiples of ``space_to_depth * 2**depth``.

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
        space_to_depth: int = 1,
    ) -> None:
        super().__init__()
        if min(in_channels, out_channels, base_channels, space_to_depth) < 1 or depth < 1:
            raise ValueError(
                "UNet: in_channels, out_channels, base_channels, depth and space_to_depth "
                f"must be >= 1, got {in_channels}, {out_channels}, {base_channels}, {depth}, "
                f"{space_to_depth}."
            )
        if upsampling not in ("bilinear", "transpose"):
            raise ValueError(
                f"UNet: upsampling must be 'bilinear' or 'transpose', got {upsampling!r}."
            )
        self.in_channels = in_channels
        self.depth = depth
        self.space_to_depth = space_to_depth
        channels = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels * space_to_depth**2, channels[0])
        self.pool = nn.MaxPool2d(2)
        self.downs = nn.ModuleList(DoubleConv(channels[i], channels[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(
            _Up(channels[i + 1], channels[i], channels[i], upsampling)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], out_channels * space_to_depth**2, kernel_size=1)

    @property
    def size_multiple(self) -> int:
        """Height and width of an input must be multiples of this many pixels."""
        return int(self.space_to_depth * 2**self.depth)

    def forward(self, x: torch.Tensor, *, folded: bool = False) -> torch.Tensor:
        """Return logits (N, out_channels, H, W) for inputs (N, in_channels, H, W).

        With ``folded=True`` the input is already space-to-depth folded, (N,
        in_channels * f**2, H / f, W / f) as :func:`fold_space_to_depth` lays it out:
        the tiled predictor folds tiles on the host in the copy that batches them, which
        saves the net a pass over its input (about 10 % of a forward pass on a CPU).
        """
        if self.space_to_depth > 1 and not folded:
            x = F.pixel_unshuffle(x, self.space_to_depth)
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        y = self.head(y)
        if self.space_to_depth > 1:
            y = F.pixel_shuffle(y, self.space_to_depth)
        return y  # type: ignore[no-any-return]


def fold_space_to_depth(tile: NDArray[np.float32], factor: int) -> NDArray[np.float32]:
    """Fold a (C, H, W) tile into (H / f, W / f, C * f**2), channels last, as numpy.

    Channel ``c * f**2 + i * f + j`` holds pixel ``(i, j)`` of each f x f block of band
    ``c``: the order :func:`torch.nn.functional.pixel_unshuffle` uses, so a batch of
    folded tiles, permuted to (N, C, H, W), is what :meth:`UNet.forward` takes with
    ``folded=True``. ``factor=1`` only moves channels last.

    Copied one (i, j) offset at a time: one transpose of the whole 5-d view moved
    ``factor`` floats per step and took 3x as long (4.2 against 1.4 ms for a 6-band
    512 px tile; 3.5 s of a 12,000 km² detect).
    """
    bands, height, width = tile.shape
    blocks = tile.reshape(bands, height // factor, factor, width // factor, factor)
    folded = np.empty((height // factor, width // factor, bands, factor, factor), tile.dtype)
    for i in range(factor):
        for j in range(factor):
            folded[:, :, :, i, j] = blocks[:, :, i, :, j].transpose(1, 2, 0)
    return folded.reshape(height // factor, width // factor, bands * factor * factor)
