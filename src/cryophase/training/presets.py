"""Named training presets: model sizes, grid and optimisation budget for each model.

``default``: 64 x 64 particles at 3.5 A/px, a 16 x 16 x 4 latent, sized to train VAE + denoiser + regression peer
in about an hour on two CPU cores (one model per core; see the budgets below). ``paper``: 256 x 256 -> 64 x 64 latent as in the paper, for GPUs.
Both train on the simulator's default ranges (200 and 300 kV, defocus 0.5-3 um, dose 10-80 e/A^2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryophase.diffusion.schedule import DiffusionConfig
from cryophase.models.conditioning import ConditioningConfig
from cryophase.models.regression import RegressionConfig
from cryophase.models.unet import UNetConfig
from cryophase.models.vae import VAEConfig
from cryophase.training.loop import LoopConfig


@dataclass
class Preset:
    """Everything ``cryophase train`` needs besides the data.

    Attributes
    ----------
    image_size, pixel_size_angstrom : the training grid (the simulator's box and pixel size).
    vae, denoiser, regression, diffusion : model configs (scalings are fitted during training).
    conditioning : the denoiser's condition channels (``denoiser.in_channels`` is the latent channels plus
        ``conditioning.n_channels``).
    pixel_denoiser : the pixel-space peer of ``denoiser`` (same UNet family on the ``(1, H, W)`` phase with the
        iterative phase as a second channel, no VAE); ``benchmarks/cost.py`` compares the two.
    kl_weight : weight of the VAE's KL term.
    vae_spectral_weight : weight of the VAE's per-Fourier-ring relative error (0: plain mean squared error).
    vae_power_weight : weight of the VAE's per-ring squared log power ratio, reconstruction over truth (0: off).
    condition_method : iterative method whose result conditions the denoiser and the regression peer.
    vae_loop, ldm_loop, regression_loop, pixel_loop : optimisation settings and time budgets.
    """

    name: str
    image_size: int
    pixel_size_angstrom: float
    vae: VAEConfig
    denoiser: UNetConfig
    regression: RegressionConfig
    pixel_denoiser: UNetConfig
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    kl_weight: float = 1e-4
    vae_spectral_weight: float = 0.0
    vae_power_weight: float = 0.0
    condition_method: str = "raf"
    vae_loop: LoopConfig = field(default_factory=LoopConfig)
    ldm_loop: LoopConfig = field(default_factory=LoopConfig)
    regression_loop: LoopConfig = field(default_factory=LoopConfig)
    pixel_loop: LoopConfig = field(default_factory=LoopConfig)


def default_preset() -> Preset:
    latent = 4
    vae = VAEConfig(latent_channels=latent, base_channels=16, n_downsamplings=2)
    # [z_t, E(ml)] plus the measured contrast and the ml phase folded 4 x 4 onto the latent grid (2 x 16 channels).
    # Ablation (docs/model-card.md; 32 held-out particles per dose, K = 8, 20 steps, 22 min of cached-code training
    # on 1 thread each): NCC of the mean 0.812 / 0.827 / 0.832 at 15 / 30 / 60 e/A^2 with these channels (6,662
    # steps), 0.793 / 0.798 / 0.802 without (8,454 steps).
    conditioning = ConditioningConfig(pixel_inputs=True)
    return Preset(
        name="default",
        image_size=64,
        pixel_size_angstrom=3.5,
        vae=vae,
        conditioning=conditioning,
        denoiser=UNetConfig(in_channels=latent + conditioning.n_channels(latent, vae.downsampling_factor),
                            out_channels=latent, base_channels=32, channel_multipliers=(1, 2, 2), embedding_dim=128),
        regression=RegressionConfig(UNetConfig(in_channels=2, out_channels=1, base_channels=16,
                                               channel_multipliers=(1, 2, 4), use_timestep=False)),
        # Pixel-space peer of `denoiser`, sized so that it has about the same parameters (0.83 M vs 0.81 M) and a
        # training step costs about what the latent one cost with its frozen VAE encoder before codes were cached
        # (batch 64, 1 thread: 1.6 s vs 0.23 s denoiser + 1.1 s encoding); the latent UNet itself at 64 px takes 4.9 s.
        pixel_denoiser=UNetConfig(in_channels=2, out_channels=1, base_channels=16, channel_multipliers=(1, 2, 4, 4),
                                  embedding_dim=128),
        # The VAE's loss adds the per-ring relative error: after 12 min on 1 thread, held-out reconstruction NCC
        # 0.985 (0.966 without) and the power ratio within 0.8-1.25 out to 1/9.7 A^-1 (1/15 A^-1 without).
        vae_spectral_weight=1.0,
        # Budgets of the shipped weights (session 4), one thread per model on 2 cores, about 64 min of wall in all.
        # Core A: the VAE (24 min: at 12 min on this machine's slower cores it had 549 steps and lost the power
        # beyond 1/11 A^-1), then ldm, which first encodes the data set once (13 min), then 26 min of steps.
        # Core B: the `ml` conditions of the data set (8 min, shared), then the regression peer for 63 min: the
        # same CPU time as the latent model's VAE, encoding and steps together (same data, same CPU budget).
        vae_loop=LoopConfig(batch_size=32, learning_rate=1e-3, max_minutes=24.0, ema_decay=0.995),
        ldm_loop=LoopConfig(batch_size=64, learning_rate=5e-4, max_minutes=26.0, ema_decay=0.999),
        regression_loop=LoopConfig(batch_size=32, learning_rate=1e-3, max_minutes=63.0, ema_decay=0.995),
        pixel_loop=LoopConfig(batch_size=64, learning_rate=5e-4, max_minutes=20.0, ema_decay=0.999),
        # The condition is the iterative phase retrieval whose result carries most information about the truth.
        # Measured on 96 simulated particles of the training distribution (ice, k3, contrast factor 0.4-1,
        # 1 thread, loaded machine), NCC to the truth at 15 / 60 e/A^2: ml 0.30 / 0.37 (37 particles/s),
        # wiener 0.18 / 0.29 (2300/s), raf 0.09 / 0.20 (67/s). So the CPU preset conditions on Poisson
        # maximum likelihood (`ml`); the paper preset keeps Ghostbuster's raf.
        condition_method="ml",
    )


def paper_preset() -> Preset:
    latent = 4
    return Preset(
        name="paper",
        image_size=256,
        pixel_size_angstrom=1.0,
        vae=VAEConfig(latent_channels=latent, base_channels=64, n_downsamplings=2),
        denoiser=UNetConfig(in_channels=2 * latent, out_channels=latent, base_channels=128,
                            channel_multipliers=(1, 2, 3, 4), embedding_dim=512),
        regression=RegressionConfig(UNetConfig(in_channels=2, out_channels=1, base_channels=64,
                                               channel_multipliers=(1, 2, 4, 4), use_timestep=False)),
        # Not trained at this size: narrow at full resolution, down to the latent denoiser's deepest grid (8 px).
        pixel_denoiser=UNetConfig(in_channels=2, out_channels=1, base_channels=32,
                                  channel_multipliers=(1, 2, 4, 6, 8, 8), embedding_dim=512),
        vae_loop=LoopConfig(batch_size=32, learning_rate=2e-4, max_steps=100_000, ema_decay=0.9999,
                            validate_every=1000, checkpoint_every=5000, n_validation=64),
        ldm_loop=LoopConfig(batch_size=64, learning_rate=1e-4, max_steps=300_000, ema_decay=0.9999,
                            validate_every=2000, checkpoint_every=5000, n_validation=64),
        regression_loop=LoopConfig(batch_size=32, learning_rate=2e-4, max_steps=100_000, ema_decay=0.9999,
                                   validate_every=1000, checkpoint_every=5000, n_validation=64),
        pixel_loop=LoopConfig(batch_size=64, learning_rate=1e-4, max_steps=300_000, ema_decay=0.9999,
                              validate_every=2000, checkpoint_every=5000, n_validation=64),
    )


PRESETS = {"default": default_preset, "paper": paper_preset}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
