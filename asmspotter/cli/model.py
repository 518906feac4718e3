"""The ``model`` commands: train and evaluate detection models (torch loaded inside them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asmspotter.cli.app import fail, progress_bars
from asmspotter.errors import AsmspotterError

model_app = typer.Typer(help="Detection models: train, evaluate.", no_args_is_help=True)


@model_app.command("train")
def model_train(
    name: Annotated[str, typer.Argument(help="Model folder name under models/.")] = "s2-unet-v1",
    scenes: Annotated[
        Path | None,
        typer.Option(help="Folder of 4-band GeoTIFF scenes; without it, generated chips."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Mining polygons: GeoJSON or LabelBox NDJSON export.")
    ] = None,
    negatives: Annotated[
        Path | None, typer.Option(help="GeoJSON of negative areas (dismissed false positives).")
    ] = None,
    chips: Annotated[
        Path | None,
        typer.Option(
            help="A folder built by `asmspotter dataset build` (its chips/ and labels.geojson)."
        ),
    ] = None,
    resolution_m: Annotated[float, typer.Option(help="Pixel size of generated chips, m.")] = 10.0,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 14,
    train_chips: Annotated[int, typer.Option(help="Training chips or patches.")] = 1400,
    patch_px: Annotated[int, typer.Option(help="Patch size for scene training, pixels.")] = 128,
    block_px: Annotated[
        int | None, typer.Option(help="Spatial split block, pixels (default 2 x patch).")
    ] = None,
    hard_lookalikes: Annotated[
        bool, typer.Option(help="Generated chips with the harder look-alikes.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Resume from the model's checkpoint.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model.")] = False,
    device: Annotated[
        str | None, typer.Option(help="Torch device, e.g. cpu or cuda (default: CUDA if present).")
    ] = None,
) -> None:
    """Train a U-Net on a folder of scenes + labels (or generated chips); write weights + card."""
    from asmspotter.detect.train.config import TrainConfig
    from asmspotter.settings import get_settings

    out_dir = get_settings().models_dir / name
    if (out_dir / "weights.pt").exists() and not overwrite:
        raise fail(f"{out_dir} already holds a model; pass --overwrite to replace it.")
    if chips is not None:
        from asmspotter.detect.real_dataset import chip_training_inputs

        if scenes is not None or labels is not None:
            raise fail("--chips already names the scenes and labels; drop --scenes/--labels.")
        try:
            scenes, labels = chip_training_inputs(chips)
        except AsmspotterError as exc:
            raise fail(str(exc)) from exc

    try:
        config = TrainConfig(
            out_dir=out_dir,
            name=name,
            scene_dir=scenes,
            labels_path=labels,
            negatives_path=negatives,
            resolution_m=resolution_m,
            n_train=train_chips,
            epochs=epochs,
            seed=seed,
            patch_px=patch_px,
            block_px=block_px,
            hard_fraction=1.0 if hard_lookalikes else 0.0,
            resume=resume,
            device=device,
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    from asmspotter.detect.train.detector import train_detector
    from asmspotter.progress import progress_bar

    def progress(p: dict[str, float]) -> None:
        epochs_bar(int(p["epoch"]), int(p["epochs"]))
        typer.echo(
            f"epoch {p['epoch']:.0f}/{p['epochs']:.0f}: loss {p['loss']:.4f} "
            f"val IoU {p['val_iou']:.3f} ({p['seconds']:.0f} s)"
        )

    try:
        with progress_bars(), progress_bar(f"train {name} (epochs)", total=epochs) as epochs_bar:
            card = train_detector(config, progress)
    except (AsmspotterError, ValueError) as exc:
        raise fail(str(exc)) from exc
    m = card.metrics
    typer.echo(
        f"Model written to {out_dir}: test pixel IoU {m.pixel_iou:.3f}, F1 {m.pixel_f1:.3f}, "
        f"object F1 {m.object_f1:.3f} at threshold {card.threshold:.2f}"
    )


@model_app.command("evaluate")
def model_evaluate(
    model: Annotated[str, typer.Argument(help="Model folder name under models/, or a path.")],
    data: Annotated[
        str,
        typer.Argument(
            help="Folder of scenes + labels.geojson|labels.ndjson, or generated[-hard][:<m>]."
        ),
    ],
    precision: Annotated[
        str | None,
        typer.Option(help="fp32 or bf16 (default: the card's; fp32 without native bf16)."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Where the PR curve goes (default: the model folder).")
    ] = None,
    update_card: Annotated[bool, typer.Option(help="Record the result in the card.")] = True,
    check_precision: Annotated[
        bool, typer.Option(help="Also measure bf16 vs fp32 and set the card's default.")
    ] = False,
) -> None:
    """Pixel and object metrics, area error and PR curve of a model and the baseline."""
    from asmspotter.detect.evaluate import check_bf16, evaluate_model
    from asmspotter.settings import get_settings

    model_dir = Path(model) if Path(model).is_dir() else get_settings().models_dir / model
    if precision not in (None, "fp32", "bf16"):
        raise fail(f"--precision must be fp32 or bf16, got {precision!r}.")
    try:
        if check_precision:
            check = check_bf16(model_dir, data, update_card=update_card)
            typer.echo(
                f"precision check: fp32 IoU {check.fp32_iou:.4f}, bf16 IoU {check.bf16_iou:.4f}, "
                f"max |dp| {check.max_abs_probability_diff:.3f}, native bf16 "
                f"{check.bf16_supported}"
            )
        result = evaluate_model(
            model_dir,
            data,
            precision=precision,  # type: ignore[arg-type]
            out_dir=out_dir,
            update_card=update_card,
        )
    except (AsmspotterError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"{model_dir.name} on {data}: {result.description} ({result.precision})")
    typer.echo(
        f"{'detector':22} {'thr':>5} {'px P':>6} {'px R':>6} {'px F1':>6} {'px IoU':>6} "
        f"{'obj P':>6} {'obj R':>6} {'obj F1':>6} {'area err':>8}"
    )
    rows = [
        (f"{model_dir.name}", result.model),
        (f"{model_dir.name} @ best F1", result.model_at_best_f1),
    ]
    if result.baseline is not None:
        rows.append(("spectral baseline", result.baseline))
    for label, m in rows:
        area = f"{m.area_error_pct:7.1f}%" if m.area_error_pct is not None else "      -"
        typer.echo(
            f"{label:22} {m.threshold:5.2f} {m.pixel_precision:6.3f} {m.pixel_recall:6.3f} "
            f"{m.pixel_f1:6.3f} {m.pixel_iou:6.3f} {m.object_precision:6.3f} "
            f"{m.object_recall:6.3f} {m.object_f1:6.3f} {area}"
        )
    typer.echo(f"threshold maximising pixel F1: {result.best_f1_threshold:.3f}")
    typer.echo(f"PR curve: {result.pr_curve_png}")
