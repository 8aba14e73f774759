"""The supervised regression peer: a UNet from (measurement, iterative result) to phase, at full resolution.

It is the bar the latent diffusion model must meet: same data, same CPU budget, no sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cryophase.models.unet import UNet, UNetConfig
from cryophase.physics.forward import ImagingPhysics


def _default_backbone() -> UNetConfig:
    return UNetConfig(in_channels=2, out_channels=1, base_channels=32, channel_multipliers=(1, 2, 4),
                      use_timestep=False, use_physics=True)


@dataclass
class RegressionConfig:
    """Regression peer.

    Attributes
    ----------
    backbone : the UNet (inputs: normalised contrast and iterative phase; output: phase / phase_scale_rad).
    phase_scale_rad : phases are divided by this before and multiplied after the network.
    """

    backbone: UNetConfig = field(default_factory=_default_backbone)
    phase_scale_rad: float = 1.0

    def __post_init__(self):
        if isinstance(self.backbone, dict):
            self.backbone = UNetConfig(**self.backbone)


def normalised_contrast(counts: torch.Tensor, physics: ImagingPhysics) -> torch.Tensor:
    """``counts / counts_per_pixel - 1`` (B, H, W): the measured contrast, about 0 for empty ice."""
    return counts / physics.counts_per_pixel.to(counts)[:, None, None] - 1.0


class PhaseRegressor(nn.Module):
    """``forward(inputs (B, 2, H, W), physics_features (B, 3)) -> (B, H, W)`` normalised phase."""

    def __init__(self, config: RegressionConfig):
        super().__init__()
        self.config = config
        self.net = UNet(config.backbone)

    def forward(self, inputs: torch.Tensor, physics: torch.Tensor | None) -> torch.Tensor:
        return self.net(inputs, None, physics)[:, 0]

    def inputs(self, counts: torch.Tensor, condition_phase: torch.Tensor, physics: ImagingPhysics) -> torch.Tensor:
        """Stack the network inputs: ``(B, 2, H, W)``."""
        return torch.stack([normalised_contrast(counts, physics),
                            condition_phase / self.config.phase_scale_rad], dim=1)
