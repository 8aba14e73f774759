"""``cryophase train vae|ldm|regression|pixel``: train one model of a preset, on the fly or from a simulated folder.

Run ``vae`` first; ``ldm`` and ``regression`` then use the same ``OUT`` folder, whose ``weights/`` subfolder is a
complete weights folder for ``cryophase retrieve --method ldm --weights OUT/weights``. ``pixel`` (the
pixel-space peer of ``ldm``, no VAE) writes ``OUT/weights/pixel_denoiser.*`` for ``--method pixel-diffusion``.
Several GPUs or nodes: ``torchrun --nproc-per-node N $(which cryophase) train ldm ...`` (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import torch
import typer

from cryophase.cli._common import prepare_output_dir, provenance, resolve_device, user_errors, write_json_atomic
from cryophase.cli.main import app
from cryophase.errors import CryophaseError
from cryophase.training.presets import PRESETS, get_preset

train_app = typer.Typer(help="Train the phase VAE, the latent denoiser (ldm), the regression peer or the "
                             "pixel-space diffusion peer (pixel).",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")


def _data(preset, data_folder: Optional[Path], specimens: List[str], seed: int):
    from cryophase.training.data import SimulatedData, load_simulated_folder

    if data_folder is not None:
        return load_simulated_folder(data_folder)
    from cryophase.simulation import SimulationConfig
    from cryophase.specimens.registry import load_specimens

    config = SimulationConfig(box_size=preset.image_size, pixel_size_angstrom=preset.pixel_size_angstrom)
    return SimulatedData(load_specimens(list(specimens), torch.Generator().manual_seed(seed)), config)


def _command(kind: str):
    def command(
        out: Path = typer.Option(..., "--out", help="Run folder: weights/ and <model>/ (checkpoint, metrics.csv)."),
        preset: str = typer.Option("default", "--preset", help=f"One of: {', '.join(PRESETS)}."),
        data: Optional[Path] = typer.Option(None, "--data", help="A `cryophase simulate` output folder; "
                                                                 "default: simulate on the fly."),
        specimen: List[str] = typer.Option(["synthetic"], "--specimen",
                                           help="Specimens for on-the-fly simulation ('synthetic' or PDB/mmCIF/MRC "
                                                "files); repeat for several."),
        max_minutes: Optional[float] = typer.Option(None, "--max-minutes",
                                                    help="Wall-time budget (default: the preset's)."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps",
                                                help="Step budget; given alone it lifts the preset's time budget."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size",
                                                 help="Particles per step and process (default: the preset's)."),
        seed: int = typer.Option(0, "--seed", help="Seeds weights, data and noise."),
        vae_weights: Optional[Path] = typer.Option(None, "--vae-weights",
                                                   help="ldm: folder with the trained VAE (default: OUT/weights)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUT/<model>/checkpoint."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Start over, replacing an earlier run."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    ):
        from cryophase.training.ddp import init_distributed, shutdown
        from cryophase.training.runs import run

        for flag, value in (("--max-steps", max_steps), ("--batch-size", batch_size)):
            if value is not None and value < 1:
                raise CryophaseError(f"{flag} must be at least 1, got {value}")
        if max_minutes is not None and not max_minutes > 0:
            raise CryophaseError(f"--max-minutes must be positive, got {max_minutes}")
        chosen = get_preset(preset)
        loop = getattr(chosen, f"{kind}_loop")
        changes = {k: v for k, v in dict(max_minutes=max_minutes, max_steps=max_steps,
                                          batch_size=batch_size).items() if v is not None}
        loop = replace(loop, seed=seed, **changes)
        if loop.max_minutes is not None and max_steps is not None and max_minutes is None:
            loop = replace(loop, max_minutes=None)
        if vae_weights is not None and kind != "ldm":
            raise CryophaseError("--vae-weights is only for `train ldm`")
        run_folder = Path(out) / kind
        if resume and overwrite:
            raise CryophaseError("--resume and --overwrite contradict each other")
        if not resume:
            prepare_output_dir(run_folder, ["checkpoint", "metrics.csv"], overwrite=overwrite)
            for stale in ("checkpoint", "metrics.csv", "tensorboard"):
                target = run_folder / stale
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        ctx = init_distributed(resolve_device(device))
        try:
            if ctx.is_main:
                write_json_atomic(run_folder / "run.json", provenance(
                    {"kind": kind, "preset": preset, "loop": loop, "data": data, "specimen": list(specimen),
                     "world_size": ctx.world_size}))
            result = run(kind, chosen, _data(chosen, data, specimen, seed), Path(out), loop, ctx, resume=resume,
                         vae_folder=vae_weights, progress=progress)
        finally:
            shutdown(ctx)
        if ctx.is_main:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in result.last_metrics.items())
            typer.echo(f"{kind}: {result.step} steps (stopped by {result.stopped_by}); {shown}; "
                       f"weights in {Path(out) / 'weights'}")

    command.__doc__ = {"vae": "Train the phase VAE on clean phases (run this first).",
                       "ldm": "Train the latent conditional denoiser (needs the trained VAE).",
                       "regression": "Train the supervised regression peer.",
                       "pixel": "Train the pixel-space diffusion peer of ldm (no VAE; for cost comparisons)."}[kind]
    return user_errors(command)


for _kind in ("vae", "ldm", "regression", "pixel"):
    train_app.command(_kind)(_command(_kind))
