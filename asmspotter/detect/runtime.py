"""The model at run time: load a model directory, pick the device and threads, build the net.

:func:`load_model` reads a model directory (card + weights, see
:mod:`asmspotter.detect.model_card`), refuses weights that are not the card's, folds
BatchNorm into the convs and puts the net channels-last on its device;
:func:`configure_torch_threads` sizes torch's threads to the cores this process (or
Dask worker) may use. Training builds its untrained net with :func:`build_network`.
"""

from __future__ import annotations

import functools
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from asmspotter.cluster import task_core_budget
from asmspotter.detect.model_card import (
    WEIGHTS_FILENAME,
    Architecture,
    InferencePrecision,
    ModelCard,
    check_weights_match_card,
    load_card,
)
from asmspotter.detect.unet import UNet
from asmspotter.errors import ModelMismatchError, ModelNotFoundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference.

    Attributes:
        card: The model card (bands, normalisation, threshold, tiling).
        module: The torch network, in eval mode, on ``device``.
        device: The torch device the network runs on.
        model_dir: The directory the model was loaded from.
    """

    card: ModelCard
    module: nn.Module
    device: torch.device
    model_dir: Path | None = None


def configure_torch_threads() -> int:
    """Set torch's intra-op threads to the cores available to this process.

    torch defaults to the machine's physical cores, which oversubscribes a container
    or a Dask worker pinned to fewer cores
    (https://pytorch.org/docs/stable/notes/cpu_threading_torchscript_inference.html).
    On a Dask worker the worker's thread count is the budget: two one-thread workers
    on two cores use one core each.

    Returns:
        The number of threads set.
    """
    n = task_core_budget()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(device: str | None = None) -> torch.device:
    """Return ``device``, or CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 or AMX-BF16 (Linux /proc/cpuinfo; read once)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def device_has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware.

    That is a CPU's bf16 instructions or a GPU's bf16 support; without them bf16
    autocast is emulated and slower than fp32.
    """
    if device.type == "cuda":
        # Ampere (compute capability 8) and later; is_bf16_supported() also says yes
        # where bf16 is only emulated.
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu" and cpu_has_native_bf16()


def run_precision(card_precision: InferencePrecision, device: torch.device) -> InferencePrecision:
    """The precision a run uses when it names none: the card's, or fp32 without native bf16.

    A card's bf16 was chosen on the machine that measured it (``check_bf16``); on a CPU
    without AVX512-BF16 or AMX the same autocast runs emulated, an order of magnitude
    slower than fp32, and fp32's scores are the card's reference anyway.
    """
    if card_precision == "bf16" and not device_has_native_bf16(device):
        _say_bf16_falls_back(str(device))
        return "fp32"
    return card_precision


@functools.cache
def _say_bf16_falls_back(device: str) -> None:
    """Log the fallback once per device and process, not once per patch of an evaluation."""
    logger.info("The model card picks bf16, but %s has no native bf16: running in fp32.", device)


def build_model(card: ModelCard) -> UNet:
    """Build the (untrained) network the card describes."""
    return build_network(card.architecture, n_bands=len(card.bands))


def build_network(architecture: Architecture, n_bands: int) -> UNet:
    """Build an untrained U-Net of ``architecture`` for ``n_bands`` inputs, one logit out."""
    return UNet(
        in_channels=n_bands,
        out_channels=1,
        base_channels=architecture.base_channels,
        depth=architecture.depth,
        upsampling=architecture.upsampling,
        space_to_depth=architecture.space_to_depth,
    )


def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that follows a conv into the conv's weights and bias.

    Inference then skips one memory-bound pass over every feature map per conv (the
    net is small, so those passes cost as much as the convs); outputs are equal to
    float rounding. The module must be in eval mode; returns it, changed in place.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        layers = list(child)
        for i in range(len(layers) - 1):
            conv, norm = layers[i], layers[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                child[i] = fuse_conv_bn_eval(conv, norm)
                child[i + 1] = nn.Identity()
    return module


def load_model(model_dir: Path, device: str | None = None) -> LoadedModel:
    """Load a model directory's card and weights for inference.

    Args:
        model_dir: Directory with ``model_card.json`` and ``weights.pt``.
        device: Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None picks CUDA when
            available, else CPU.

    Returns:
        The model in eval mode, channels-last, on the device.

    Raises:
        ModelNotFoundError: If the card or the weights are missing.
        ModelMismatchError: If the card is invalid, the weights do not fit its
            architecture, or they are not the weights written with the card.
    """
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    weights_path = model_dir / WEIGHTS_FILENAME
    if not weights_path.is_file():
        raise ModelNotFoundError(
            f"{weights_path}: weights not found next to the model card; copy the model's "
            f"{WEIGHTS_FILENAME} there or re-train it with `asmspotter model train`."
        )
    check_weights_match_card(card, model_dir, weights_path)
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        configure_torch_threads()
    module: nn.Module = build_model(card)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelMismatchError(
            f"{weights_path}: cannot read these weights ({type(exc).__name__}: "
            f"{str(exc)[:200]}); the file is truncated or not a torch state_dict. Copy it "
            "again from where the model came from, or re-train the model."
        ) from exc
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelMismatchError(
            f"{weights_path}: weights do not fit the architecture in the model card "
            f"({card.architecture.model_dump()}, {len(card.bands)} bands): {exc}. Use the "
            "card that was written with these weights, or re-train the model."
        ) from exc
    module = fuse_batchnorm(module.eval())
    module = module.to(torch_device)
    # Channels-last lets oneDNN (CPU) and cuDNN pick faster conv kernels
    # (https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html).
    module = module.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    logger.info(
        "loaded model %s v%s from %s on %s", card.name, card.version, model_dir, torch_device
    )
    return LoadedModel(card=card, module=module, device=torch_device, model_dir=model_dir)
