"""``cryophase demo``: see the method work on simulated particles, with the shipped weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from cryophase.cli._common import prepare_output_dir, resolve_device, user_errors
from cryophase.cli.main import app
from cryophase.demo import DEMO_FILES, DemoConfig, run_demo

_D = DemoConfig()


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("cryophase-demo"), "--out", help="Output folder."),
    specimen: Optional[list[str]] = typer.Option(
        None, "--specimen", help="'synthetic' (default), PDB/mmCIF files or MRC maps; repeat for several."),
    dose: float = typer.Option(_D.dose_e_per_a2, "--dose", help="Electron dose, e/A^2."),
    n: int = typer.Option(_D.n_particles, "--n", help="Number of particles."),
    samples: int = typer.Option(_D.ldm_samples, "--samples", help="ldm samples per particle."),
    seed: int = typer.Option(_D.seed, "--seed", help="Seed of every random draw."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Model weights folder (default: shipped)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace results already in --out."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    """Simulate particles, retrieve their phase four ways, and write a figure, metrics and an HTML report."""
    if n < 1:
        raise ValueError("--n must be at least 1")
    if dose <= 0:
        raise ValueError("--dose must be positive (electrons per square Angstrom)")
    config = replace(_D, n_particles=n, dose_e_per_a2=dose, seed=seed, ldm_samples=samples, weights=weights,
                     specimens=tuple(specimen) if specimen else _D.specimens)
    prepare_output_dir(out, list(DEMO_FILES), overwrite=overwrite)
    result = run_demo(out, config, device=resolve_device(device))
    table = Table(title=f"cryophase demo: {n} particles at {dose:g} e/A^2 (mean over particles)")
    for col in ("method", "ncc", "rmse_rad", "ssim", "frc_0.5_angstrom", "ncc_lowpass"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for row in result.metrics:
        table.add_row(row["method"], *(f"{row[c]:.3f}" if c != "frc_0.5_angstrom" else f"{row[c]:.1f}"
                                       for c in ("ncc", "rmse_rad", "ssim", "frc_0.5_angstrom", "ncc_lowpass")))
    console = Console()
    console.print(table)
    console.print(f"wrote {', '.join(str(p) for p in result.files.values())} in {result.seconds:.1f} s")
