"""One training run from a preset: build the task for ``vae``, ``ldm``, ``regression`` or ``pixel`` and train it.

Layout of ``out``: ``weights/`` (vae, denoiser, regression, pixel_denoiser .safetensors + .json, usable by the
``ldm``, ``regression`` and ``pixel-diffusion`` reconstructors) and ``<kind>/`` (``checkpoint/``, ``metrics.csv``).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch

from cryophase.errors import CryophaseError
from cryophase.models.blocks import initialise
from cryophase.models.bundle import VAE_NAME, ModelGrid, denoiser_input_channels, load_vae
from cryophase.models.pixel import PixelCodec, PixelCodecConfig, power_of_two_scale
from cryophase.models.regression import PhaseRegressor
from cryophase.models.unet import UNet
from cryophase.models.vae import PhaseVAE
from cryophase.training.data import (Conditioner, TensorData, TrainingData, fit_phase_scale_rad,
                                     precompute_condition)
from cryophase.training.ddp import DistributedContext
from cryophase.training.loop import LoopConfig, RunResult, train
from cryophase.training.presets import Preset
from cryophase.training.tasks import LDMTask, PixelDiffusionTask, RegressionTask, VAETask

KINDS = ("vae", "ldm", "regression", "pixel")
#: kinds whose denoiser is conditioned on the iterative estimate through a frozen codec
CODEC_KINDS = ("ldm", "pixel")
PHASE_SCALE_PARTICLES = 256


def check_grid(data: TrainingData, grid: ModelGrid, what: str) -> None:
    if data.image_size != grid.image_size or abs(data.pixel_size_angstrom - grid.pixel_size_angstrom) > 1e-6:
        raise CryophaseError(f"the training data are {data.image_size} px at {data.pixel_size_angstrom} A/px but "
                             f"{what} is {grid.image_size} px at {grid.pixel_size_angstrom} A/px")


def build_task(kind: str, preset: Preset, data: TrainingData, weights_folder: Path, seed: int,
               vae_folder: Path | None = None):
    """The task for ``kind``; ``ldm`` loads the trained VAE from ``vae_folder`` (default ``weights_folder``)."""
    grid = ModelGrid(preset.image_size, preset.pixel_size_angstrom)
    check_grid(data, grid, f"preset {preset.name!r}")
    init = torch.Generator().manual_seed(seed * 7919 + 4)
    if kind == "vae":
        config = copy.deepcopy(preset.vae)
        config.phase_scale_rad = fit_phase_scale_rad(data, PHASE_SCALE_PARTICLES, seed)
        return VAETask(initialise(PhaseVAE(config), init), preset.kl_weight, grid, preset.vae_spectral_weight,
                       preset.vae_power_weight)
    if kind == "ldm":
        source = Path(vae_folder) if vae_folder is not None else Path(weights_folder)
        if not (source / f"{VAE_NAME}.json").is_file():
            raise CryophaseError(f"{source}: no trained VAE ({VAE_NAME}.json); run `cryophase train vae` first "
                                 "or pass --vae-weights")
        vae, vae_grid = load_vae(source)
        check_grid(data, vae_grid, f"the VAE in {source}")
        if source.resolve() != Path(weights_folder).resolve():
            Path(weights_folder).mkdir(parents=True, exist_ok=True)
            for suffix in (".json", ".safetensors"):
                shutil.copy2(source / f"{VAE_NAME}{suffix}", Path(weights_folder) / f"{VAE_NAME}{suffix}")
        conditioning = copy.deepcopy(preset.conditioning)
        conditioning.phase_scale_rad = vae.config.phase_scale_rad
        wanted = denoiser_input_channels(vae, conditioning)
        if preset.denoiser.in_channels != wanted:
            raise CryophaseError(f"preset {preset.name!r}: the denoiser takes {preset.denoiser.in_channels} input "
                                 f"channels, but z_t and the condition ({conditioning}) of the "
                                 f"{vae.config.latent_channels}-channel latent make {wanted}")
        return LDMTask(initialise(UNet(copy.deepcopy(preset.denoiser)), init), vae, preset.diffusion,
                       Conditioner(preset.condition_method), grid, conditioning=conditioning)
    if kind == "regression":
        config = copy.deepcopy(preset.regression)
        config.phase_scale_rad = fit_phase_scale_rad(data, PHASE_SCALE_PARTICLES, seed)
        return RegressionTask(initialise(PhaseRegressor(config), init), Conditioner(preset.condition_method), grid)
    if kind == "pixel":
        scale = power_of_two_scale(fit_phase_scale_rad(data, PHASE_SCALE_PARTICLES, seed))
        return PixelDiffusionTask(initialise(UNet(copy.deepcopy(preset.pixel_denoiser)), init),
                                  PixelCodec(PixelCodecConfig(phase_scale_rad=scale)), preset.diffusion,
                                  Conditioner(preset.condition_method), grid)
    raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(KINDS)}")


def run(kind: str, preset: Preset, data: TrainingData, out: Path, loop: LoopConfig, ctx: DistributedContext, *,
        resume: bool = False, vae_folder: Path | None = None, progress: bool = True) -> RunResult:
    """Train one model of ``preset`` into ``out`` (see the module docstring for the layout)."""
    out = Path(out)
    weights = out / "weights"
    task = build_task(kind, preset, data, weights, loop.seed, vae_folder)
    if kind in ("ldm", "regression", "pixel") and isinstance(data, TensorData):
        data = precompute_condition(data, task.conditioner, loop.seed + 5, progress=progress)
    if kind in CODEC_KINDS:
        task.codec.to(ctx.device)
    if kind == "ldm" and isinstance(data, TensorData):
        # the pixel codec is the identity: nothing to cache
        data = task.cache_codes(data, progress=progress and ctx.is_main)
    return train(task, data, loop, out / kind, weights, ctx, resume=resume, progress=progress)
