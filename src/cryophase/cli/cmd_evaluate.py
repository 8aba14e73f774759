"""``cryophase evaluate``: metrics of retrieved phases against the true phases (simulations)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cryophase.cli._common import prepare_output_dir, provenance, user_errors, write_json_atomic
from cryophase.cli.main import app
from cryophase.errors import CryophaseError
from cryophase.evaluation.metrics import EvaluationConfig
from cryophase.evaluation.plots import plot_frc
from cryophase.evaluation.stacks import evaluate_stacks, evaluation_table

_DEFAULTS = EvaluationConfig()
METRICS_JSON = "metrics.json"
FRC_PNG = "frc.png"


@app.command()
@user_errors
def evaluate(
    truth: Path = typer.Option(..., "--truth", help="True phases, an .mrcs stack (radians)."),
    pred: Path = typer.Option(..., "--pred", help="Retrieved phases, an .mrcs stack in the same order."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for metrics.json and frc.png."),
    lowpass_angstrom: float = typer.Option(_DEFAULTS.lowpass_resolution_angstrom, "--lowpass-angstrom",
                                           help="Resolution of the low-pass filter for the second set of "
                                                "metrics, Angstrom."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size",
                                               help="Pixel size in Angstrom (default: from the MRC header)."),
    batch_size: int = typer.Option(_DEFAULTS.batch_size, "--batch-size", help="Images evaluated at a time."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace results already in --out."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    """RMSE, PSNR, SSIM, NCC and FRC resolutions (0.5, 0.143, 1/2-bit) of predicted against true phases.

    Prints a JSON table; with --out also writes metrics.json and a plot of the FRC curves (frc.png).
    """
    if not lowpass_angstrom > 0:
        raise CryophaseError(f"--lowpass-angstrom must be positive, got {lowpass_angstrom}")
    if batch_size < 1:
        raise CryophaseError(f"--batch-size must be at least 1, got {batch_size}")
    config = EvaluationConfig(lowpass_resolution_angstrom=lowpass_angstrom, batch_size=batch_size)
    if out is not None:
        prepare_output_dir(out, [METRICS_JSON, FRC_PNG], overwrite=overwrite)
    result = evaluate_stacks(truth, pred, pixel_size_angstrom=pixel_size, config=config)
    table = {**provenance(config), "truth": str(truth), "pred": str(pred), **evaluation_table(result)}
    if out is not None:
        write_json_atomic(out / METRICS_JSON, table)
        plot_frc(result.curves, result.pixel_size_angstrom, out / FRC_PNG, curves_lowpass=result.curves_lowpass,
                 title=f"FRC of {pred.name} against {truth.name}")
    typer.echo(json.dumps(table, indent=2))
