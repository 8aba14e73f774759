"""The conditional latent denoiser: a compact UNet over ``[z_t, E(iterative result)]``.

The same backbone (:class:`UNet`) without a timestep embedding is the supervised regression peer
(:mod:`cryophase.models.regression`). Both may be conditioned on the imaging physics through
:func:`physics_features` (voltage, mean defocus, dose), added to the block embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cryophase.models.blocks import Downsample, ResBlock, Upsample, group_norm, sinusoidal_embedding
from cryophase.physics.forward import ImagingPhysics

N_PHYSICS_FEATURES = 3


def physics_features(physics: ImagingPhysics) -> torch.Tensor:
    """Dimensionless summary of the imaging conditions, ``(B, 3)``, each roughly in [-1, 1] over the simulator's ranges.

    Columns: ``voltage_kv / 300 - 0.83``, ``mean defocus in um / 1.5 - 1``, ``log(dose_e_per_a2 / 30)``.
    """
    voltage = physics.optics.voltage_kv / 300.0 - 0.83
    defocus = physics.optics.defocus_mean_angstrom / 1.5e4 - 1.0
    dose = torch.log(physics.dose_e_per_a2 / 30.0)
    return torch.stack([voltage, defocus, dose], dim=-1).float()


@dataclass
class UNetConfig:
    """Architecture of a :class:`UNet`.

    Attributes
    ----------
    in_channels : input channels (denoiser: 2 x latent channels, [z_t, condition]).
    out_channels : output channels (denoiser: latent channels).
    base_channels : channels at full resolution.
    channel_multipliers : channel factor per resolution level; the grid halves between levels.
    use_timestep : embed a diffusion timestep (denoiser) or not (regression peer).
    use_physics : embed :func:`physics_features` (voltage, defocus, dose).
    embedding_dim : width of the timestep/physics embedding.
    """

    in_channels: int = 8
    out_channels: int = 4
    base_channels: int = 64
    channel_multipliers: tuple[int, ...] = (1, 2, 2)
    use_timestep: bool = True
    use_physics: bool = True
    embedding_dim: int = 128

    def __post_init__(self):
        self.channel_multipliers = tuple(int(m) for m in self.channel_multipliers)


class UNet(nn.Module):
    """UNet with one residual block per level on the way down and up, and two in the middle.

    ``forward(x, timesteps=None, physics=None)``: ``x`` is ``(B, in_channels, H, W)`` with H and W divisible by
    ``2 ** (len(channel_multipliers) - 1)``; ``timesteps`` is ``(B,)`` (denoiser only); ``physics`` is
    ``(B, 3)`` from :func:`physics_features` (when ``use_physics``). Returns ``(B, out_channels, H, W)``.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config.base_channels
        e = config.embedding_dim if (config.use_timestep or config.use_physics) else 0
        self.time_mlp = (nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
                         if config.use_timestep else None)
        self.physics_mlp = (nn.Sequential(nn.Linear(N_PHYSICS_FEATURES, e), nn.SiLU(), nn.Linear(e, e))
                            if config.use_physics else None)
        channels = [c * m for m in config.channel_multipliers]
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        prev = channels[0]
        for i, ch in enumerate(channels):
            self.down_blocks.append(ResBlock(prev, ch, e))
            self.downsamples.append(Downsample(ch) if i < len(channels) - 1 else nn.Identity())
            prev = ch
        self.mid1 = ResBlock(prev, prev, e)
        self.mid2 = ResBlock(prev, prev, e)
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for i, ch in reversed(list(enumerate(channels))):
            self.up_blocks.append(ResBlock(prev + ch, ch, e))
            self.upsamples.append(Upsample(ch) if i > 0 else nn.Identity())
            prev = ch
        self.norm_out = group_norm(prev)
        self.conv_out = nn.Conv2d(prev, config.out_channels, 3, padding=1)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config.channel_multipliers) - 1)

    def _embedding(self, x: torch.Tensor, timesteps: torch.Tensor | None,
                   physics: torch.Tensor | None) -> torch.Tensor | None:
        emb = None
        if self.time_mlp is not None:
            if timesteps is None:
                raise ValueError("this UNet is a denoiser and needs timesteps")
            t = timesteps.to(x.device).reshape(-1).expand(x.shape[0])
            emb = self.time_mlp(sinusoidal_embedding(t, self.config.embedding_dim).to(x.dtype))
        if self.physics_mlp is not None:
            if physics is None:
                raise ValueError("this UNet is conditioned on the imaging physics; pass physics_features(physics)")
            p = self.physics_mlp(physics.to(x))
            emb = p if emb is None else emb + p
        return emb

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | None = None,
                physics: torch.Tensor | None = None) -> torch.Tensor:
        f = self.downsampling_factor
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"UNet input of size {tuple(x.shape[-2:])} is not divisible by {f}")
        emb = self._embedding(x, timesteps, physics)
        h = self.conv_in(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downsamples):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid1(h, emb), emb)
        for block, up in zip(self.up_blocks, self.upsamples):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            h = up(h)
        return self.conv_out(nn.functional.silu(self.norm_out(h)))
