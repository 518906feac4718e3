"""Inference speed of the shipped models against the machine's measured GEMM rate.

For every model under ``models/`` (or those named with ``--model``) it prints, in fp32
and bf16 autocast:

- end-to-end Mpx/s of :func:`asmspotter.detect.predict.predict_probabilities` on a
  ``--image-px`` square (default four tiles wide: 1,024 px for 256 px tiles, 2,048 px for
  512 px, so the tiles overlap alike; output pixels per second, tiles overlapping as the
  card says),
- the network's own rate on batches of tiles (tile pixels per second),
- the model's FLOPs per pixel (``torch.utils.flop_counter`` on one tile; a multiply-add
  is 2 FLOPs),
- the GEMM rate measured in the same process (a square ``torch.matmul`` of
  ``--gemm-n``), and achieved / GEMM ratios. The GEMM is measured again right before
  each of ``--rounds`` rounds and each round's ratio uses its own GEMM figure (a
  virtual machine's clock drifts by 10 % or more within a minute); the median ratio
  over rounds is the result.

``--composite PATH`` (a composite COG of the pipeline, e.g. from ``composite.py
--keep``) also times, in each round next to the end-to-end run,
:func:`asmspotter.detect.stage.detect_sites` with ``verify=False`` on that file (what
the pipeline's detect stage does before the verifier: reading, tiling, network,
probability COG, vectorising) and prints the ratio of its time per pixel to the
end-to-end benchmark's (the issue's goal: 1.2x or less). Models that do not fit the
composite (another resolution) skip it.

``--memory-px 20000`` also writes a synthetic 20,000 x 20,000 px composite COG tile by
tile and runs :func:`asmspotter.detect.stage.detect_sites` on it, reporting wall time
and the peak resident memory (``ru_maxrss``) of that child process.

Usage::

    python benchmarks/inference.py                       # both models, fp32 + bf16
    python benchmarks/inference.py --memory-px 20000     # + the 20k x 20k memory run
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from asmspotter.cluster import available_cpu_count
from asmspotter.detect.predict import predict_probabilities, tiles_per_batch
from asmspotter.detect.runtime import (
    configure_torch_threads,
    cpu_has_native_bf16,
    load_model,
    run_precision,
)
from asmspotter.detect.tiling import tile_windows
from asmspotter.memory import reuse_freed_memory

REPO_ROOT = Path(__file__).resolve().parent.parent


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def gemm_rate(n: int, dtype: torch.dtype, repeats: int = 5) -> float:
    """Best-of ``repeats`` FLOP/s of an (n x n) @ (n x n) matmul in ``dtype``."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(3):  # warm-up: oneDNN/MKL pick kernels, the clock ramps up
        torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def flops_per_pixel(module: torch.nn.Module, bands: int, tile_px: int) -> float:
    """Forward FLOPs of one (1, bands, tile, tile) input divided by its pixels."""
    x = torch.zeros(1, bands, tile_px, tile_px).contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(x)
    return float(counter.get_total_flops()) / (tile_px * tile_px)


def time_network(
    module: torch.nn.Module, bands: int, tile_px: int, batch: int, precision: str, repeats: int
) -> float:
    """Tile pixels per second of the bare network on batches of tiles."""
    x = torch.randn(batch, bands, tile_px, tile_px).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        module(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            best = min(best, time.perf_counter() - start)
    return batch * tile_px * tile_px / best


def time_end_to_end(model_dir: Path, image_px: int, precision: str, batch: int) -> float:
    """Output pixels per second of predict_probabilities on an image_px square."""
    model = load_model(model_dir, device="cpu")
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(len(model.card.bands), image_px, image_px)).astype(np.float32)
    predict_probabilities(feats[:, :256, :256], model, precision=precision)  # type: ignore[arg-type]
    start = time.perf_counter()
    predict_probabilities(feats, model, batch_size=batch, precision=precision)  # type: ignore[arg-type]
    return image_px * image_px / (time.perf_counter() - start)


def fits(model_dir: Path, composite: Path) -> bool:
    """Whether the model can run on the composite (bands and resolution)."""
    import rasterio

    from asmspotter.detect.features import band_indexes
    from asmspotter.detect.model_card import check_model_fits
    from asmspotter.errors import ModelMismatchError

    card = load_model(model_dir, device="cpu").card
    with rasterio.open(composite) as src:
        bands = [b for b in band_indexes(src) if b != "valid"]
        resolution_m = float(src.res[0])
    try:
        check_model_fits(card, bands, resolution_m, model_dir=model_dir)
    except ModelMismatchError:
        return False
    return True


def time_detect(model_dir: Path, composite: Path, precision: str) -> float:
    """Output pixels per second of the detect stage without the verifier on ``composite``."""
    import rasterio

    from asmspotter.detect.stage import detect_sites

    with rasterio.open(composite) as src:
        pixels = int(src.width * src.height)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        detect_sites(
            composite,
            model_dir,
            Path(tmp) / "probability.tif",
            precision=precision,  # type: ignore[arg-type]
            verify=False,
        )
        return pixels / (time.perf_counter() - start)


def benchmark_model(model_dir: Path, args: argparse.Namespace) -> None:
    """Print one model's figures."""
    model = load_model(model_dir, device="cpu")
    card = model.card
    bands = len(card.bands)
    image_px = args.image_px or 4 * card.tile_px
    batch = args.batch or tiles_per_batch(card)
    fpp = flops_per_pixel(model.module, bands, card.tile_px)
    windows = tile_windows(image_px, image_px, card.tile_px, card.overlap_px)
    overlap_factor = len(windows) * card.tile_px**2 / image_px**2
    used_precision = run_precision(card.precision, model.device)
    print(
        f"\n## {card.name} ({card.resolution_m:g} m, base {card.architecture.base_channels}, "
        f"depth {card.architecture.depth}; tile {card.tile_px} px, overlap {card.overlap_px} px; "
        f"card precision {card.precision}, a run here uses {used_precision})"
    )
    print(f"FLOPs per pixel: {fpp / 1e6:.2f} MFLOP (forward, one {card.tile_px} px tile)")
    print(
        f"tiles computed per output pixel on a {image_px} px image: {overlap_factor:.2f}x "
        f"({len(windows)} tiles); {batch} tiles per forward pass"
    )
    print(
        f"{'precision':9} {'round':>5} {'net Mpx/s':>10} {'net GFLOP/s':>12} {'GEMM GFLOP/s':>13} "
        f"{'net/GEMM':>9} {'e2e Mpx/s':>10} {'e2e eff. GFLOP/s':>17} {'e2e/GEMM':>9}"
    )
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    if "bf16" not in precisions:
        # Emulated bf16 measured 0.13 Mpx/s against fp32's 1.6 on an AVX2-only EPYC.
        print("bf16: skipped, this CPU has no native bf16 (emulated, it is ~12x slower)")
    for precision in precisions:
        net_ratios, e2e_ratios, detect_ratios = [], [], []
        for round_ in range(1, args.rounds + 1):
            # The GEMM is measured next to each run: on a shared (virtual) machine the
            # clock drifts by 10 % or more within a minute, so a ratio is only fair
            # between measurements taken side by side; the median round is reported.
            peak = gemm_rate(args.gemm_n, DTYPES[precision])
            net = time_network(model.module, bands, card.tile_px, batch, precision, args.repeats)
            e2e = time_end_to_end(model_dir, image_px, precision, batch)
            if args.composite and fits(model_dir, args.composite):
                detect = time_detect(model_dir, args.composite, precision)
                detect_ratios.append(e2e / detect)
                print(
                    f"{precision:9} {round_:5d} detect_sites(verify=False) on "
                    f"{args.composite.name}: {detect / 1e6:.3f} Mpx/s, "
                    f"{e2e / detect:.2f}x the end-to-end time per pixel"
                )
            net_flops = net * fpp
            # Work the network really did per output pixel includes the tile overlap.
            e2e_flops = e2e * fpp * overlap_factor
            net_ratios.append(net_flops / peak)
            e2e_ratios.append(e2e_flops / peak)
            print(
                f"{precision:9} {round_:5d} {net / 1e6:10.3f} {net_flops / 1e9:12.1f} "
                f"{peak / 1e9:13.1f} {net_flops / peak:9.0%} {e2e / 1e6:10.3f} "
                f"{e2e_flops / 1e9:17.1f} {e2e_flops / peak:9.0%}"
            )
        print(
            f"{precision:9} {'median':>5} {'':10} {'':12} {'':13} "
            f"{statistics.median(net_ratios):9.0%} {'':10} {'':17} "
            f"{statistics.median(e2e_ratios):9.0%}"
            f"{'   <- what a run uses here' if precision == used_precision else ''}"
        )
        if detect_ratios:
            print(
                f"{precision:9} {'median':>5} detect / end to end, time per pixel: "
                f"{statistics.median(detect_ratios):.2f}x"
            )


def write_composite(
    path: Path, size_px: int, resolution_m: float = 10.0, block_px: int = 1024
) -> None:
    """Write a synthetic float32 composite COG (blue, green, red, nir, valid) block by block.

    Content is a generated 1,024 px landscape repeated over the square, so inference
    does realistic work; written as a tiled GeoTIFF by windows, never whole.
    """
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    from asmspotter.synthetic import render_training_pair

    refl, _ = render_training_pair(
        np.random.default_rng(0),
        size_px=block_px,
        resolution_m=resolution_m,
        mining_probability=1.0,
    )
    block = np.concatenate([refl, np.full((1, block_px, block_px), 3, np.float32)])
    profile = {
        "driver": "GTiff",
        "height": size_px,
        "width": size_px,
        "count": 5,
        "dtype": "float32",
        "crs": "EPSG:32621",
        "transform": Affine(resolution_m, 0, 500_000.0, 0, -resolution_m, 600_000.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "YES",
        "nodata": np.nan,
    }
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size_px, block_px):
            for col in range(0, size_px, block_px):
                h, w = min(block_px, size_px - row), min(block_px, size_px - col)
                dst.write(block[:, :h, :w], window=Window(col, row, w, h))  # type: ignore[call-arg]
        dst.descriptions = ("blue", "green", "red", "nir", "valid")


def memory_run(model_dir: Path, size_px: int, precision: str) -> None:
    """Write the composite, then run detect_sites in a child process; print peak RSS."""
    with tempfile.TemporaryDirectory(
        dir=REPO_ROOT / "data" if (REPO_ROOT / "data").is_dir() else None
    ) as tmp:
        composite = Path(tmp) / "composite.tif"
        start = time.perf_counter()
        write_composite(composite, size_px, load_model(model_dir, "cpu").card.resolution_m)
        print(
            f"\nwrote a {size_px} x {size_px} px composite ({composite.stat().st_size / 2**30:.2f} "
            f"GiB on disk) in {time.perf_counter() - start:.0f} s"
        )
        code = (
            "import json, resource, time, sys\n"
            "from pathlib import Path\n"
            "from asmspotter.detect.stage import detect_sites\n"
            "from asmspotter.memory import limit_gdal_cache\n"
            "from asmspotter.settings import get_settings\n"
            # As the pipeline's detect stage does: GDAL's cache capped (256 MB default).
            "limit_gdal_cache(get_settings().gdal_cache_mb)\n"
            "t = time.perf_counter()\n"
            f"d = detect_sites(Path({str(composite)!r}), Path({str(model_dir)!r}), "
            f"Path({str(Path(tmp) / 'probability.tif')!r}), min_area_ha=1.0, "
            f"precision={precision!r})\n"
            "print(json.dumps({'seconds': time.perf_counter() - t, 'polygons': len(d), "
            "'peak_rss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"detect_sites failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        mpx = size_px * size_px / 1e6
        print(
            f"detect_sites on {size_px} x {size_px} px ({mpx:.0f} Mpx, {precision}): "
            f"{result['seconds']:.0f} s ({mpx / result['seconds']:.2f} Mpx/s end to end incl. "
            f"reading, COG writing and vectorising), {result['polygons']} polygons, peak RSS "
            f"{result['peak_rss_kib'] / 2**20:.2f} GiB (GDAL cache capped at "
            f"ASMSPOTTER_GDAL_CACHE_MB, as in the pipeline)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="model folder(s); default: all")
    parser.add_argument(
        "--image-px", type=int, default=None, help="end-to-end image size (default: 4 tiles)"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="tiles per forward pass (default: tiles_per_batch)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best kept)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="GEMM + network measurements side by side"
    )
    parser.add_argument("--gemm-n", type=int, default=2048, help="matmul size for the GEMM rate")
    parser.add_argument(
        "--composite", type=Path, default=None, help="also time detect_sites on this composite"
    )
    parser.add_argument("--memory-px", type=int, default=0, help="run the N x N memory test")
    parser.add_argument("--memory-precision", default=None, help="precision of the memory run")
    parser.add_argument("--memory-model", default="s2-unet-v1", help="model of the memory run")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed figures")
    args = parser.parse_args(argv)

    threads = configure_torch_threads()
    # As tiled inference does: the net's timings then include the same malloc setup.
    reuse_freed_memory()
    models = (
        [Path(m) for m in args.model]
        if args.model
        else sorted(p.parent for p in (REPO_ROOT / "models").glob("*/model_card.json"))
    )
    print("# asmspotter inference benchmark")
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{available_cpu_count()} cores available, {threads} torch threads, native bf16: "
        f"{cpu_has_native_bf16()}, oneDNN: {torch.backends.mkldnn.is_available()}"  # type: ignore[no-untyped-call]
    )
    print(f"GEMM: {args.gemm_n}^3 matmul, best of 5, measured before each round")
    for model_dir in [] if args.no_speed else models:
        benchmark_model(model_dir, args)
    if args.memory_px:
        named = REPO_ROOT / "models" / args.memory_model
        model_dir = named if named.is_dir() else models[0]
        loaded = load_model(model_dir, device="cpu")
        precision = args.memory_precision or run_precision(loaded.card.precision, loaded.device)
        memory_run(model_dir, args.memory_px, precision)
    print(
        f"\n(peak RSS of this process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
