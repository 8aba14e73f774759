"""``cryophase retrieve``: phase retrieval on a RELION or cryoSPARC particle stack."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cryophase.cli._common import user_errors
from cryophase.cli.main import app
from cryophase.retrieve_stack import RetrieveConfig, parse_method_options, retrieve_stack
from cryophase.retrieval.base import available_methods, method_option_names

_DEFAULTS = RetrieveConfig()


@app.command()
@user_errors
def retrieve(
    particles: Path = typer.Argument(..., help="RELION particles .star (3.0-5) or cryoSPARC .cs file."),
    method: str = typer.Option(..., "--method", "-m",
                               help="Retrieval method, e.g. wiener, phase-flip, gs, raf, hio, raar, ml "
                                    "(an unknown name lists those installed)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for phases.mrcs, phases.star, retrieve.json."),
    dose: Optional[float] = typer.Option(_DEFAULTS.dose_e_per_a2, "--dose",
                                         help="Electron dose per particle image, e/A^2. Required for "
                                              "RELION-normalised particles; counts give it by their mean."),
    batch_size: int = typer.Option(_DEFAULTS.batch_size, "--batch-size", help="Particles per batch."),
    chunk_size: int = typer.Option(_DEFAULTS.chunk_size, "--chunk-size",
                                   help="Particles per chunk: the unit that is flushed, journalled, resumed and "
                                        "shared between torchrun ranks."),
    resume: bool = typer.Option(_DEFAULTS.resume, "--resume",
                                help="Continue an interrupted run in --out (same input and settings)."),
    device: str = typer.Option(_DEFAULTS.device, "--device", help="cpu, cuda or auto."),
    seed: int = typer.Option(_DEFAULTS.seed, "--seed", help="Seed for methods that sample."),
    pixel_size: Optional[float] = typer.Option(_DEFAULTS.pixel_size_angstrom, "--pixel-size",
                                               help="Override the pixel size in the metadata, Angstrom."),
    stack: Optional[Path] = typer.Option(_DEFAULTS.stack, "--stack",
                                         help="Read images from this .mrcs instead of the stack the metadata names."),
    normalised: Optional[bool] = typer.Option(_DEFAULTS.normalised, "--normalised/--counts",
                                              help="Images are RELION-normalised / electron counts "
                                                   "(default: detected)."),
    inverted: Optional[bool] = typer.Option(_DEFAULTS.inverted, "--inverted/--not-inverted",
                                            help="Normalised particles are contrast-inverted, protein white "
                                                 "(default: detected)."),
    weights: Optional[Path] = typer.Option(None, "--weights",
                                           help="Weights folder for learned methods (ldm, regression)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="ldm: sampler steps (default: the method's)."),
    samples: Optional[int] = typer.Option(None, "--samples",
                                          help="ldm: samples per particle; K > 1 writes their mean to phases.mrcs "
                                               "and the per-pixel predictive sd to uncertainty.mrcs."),
    option: Optional[List[str]] = typer.Option(None, "--option",
                                               help="A method setting KEY=VALUE (repeatable), e.g. n_steps=50."),
    overwrite: bool = typer.Option(_DEFAULTS.overwrite, "--overwrite", help="Replace results already in --out."),
    force: bool = typer.Option(_DEFAULTS.force, "--force", help="Run even if the defocus looks like micrometres."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    """Retrieve the phase of every particle; write DIR/phases.mrcs, DIR/phases.star and DIR/retrieve.json.

    A particle with NaN or infinite pixels is refused (the message names it); a constant image (no contrast)
    gets a zero phase and a note. Odd and non-square boxes work with every classical method.

    Under torchrun (python -m torch.distributed.run --nproc-per-node K -m cryophase retrieve ...) the
    particles are shared between K processes (one GPU each when CUDA is used) and one output is written.
    """
    config = RetrieveConfig(batch_size=batch_size, chunk_size=chunk_size, resume=resume, device=device, seed=seed,
                            dose_e_per_a2=dose, normalised=normalised, inverted=inverted,
                            pixel_size_angstrom=pixel_size, stack=stack, overwrite=overwrite, force=force)
    method_options = parse_method_options(option or [])
    if weights is not None:
        method_options["weights"] = weights
    for flag, key, value in (("--steps", "n_steps", steps), ("--samples", "samples", samples)):
        if value is None:
            continue
        if method in available_methods() and key not in method_option_names(method):
            takes = ", ".join(m for m in available_methods() if key in method_option_names(m))
            raise ValueError(f"{flag} applies to the sampling methods ({takes}), not to --method {method}")
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
        method_options[key] = value
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 talks
    console = Console(stderr=True, quiet=not main_rank)
    with Progress(TextColumn("retrieving"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not main_rank) as bar:
        task = bar.add_task("retrieve", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = retrieve_stack(particles, out, method, config=config, method_options=method_options,
                                 progress=advance,
                                 report=lambda line: console.print(line, highlight=False, soft_wrap=True))
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if main_rank:
        typer.echo(summary.line())
