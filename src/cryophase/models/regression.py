"""The supervised regression peer: a UNet from (measurement, iterative result) to phase, at full resolution.

It is the bar the latent diffusion model must meet: same data, same CPU budget, no sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cryophase.models.conditioning import measured_contrast
from cryophase.models.unet import UNet, UNetConfig


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


class PhaseRegressor(nn.Module):
    """``forward(inputs (B, 2, H, W), physics_features (B, 3)) -> (B, H, W)`` normalised phase."""

    def __init__(self, config: RegressionConfig):
        super().__init__()
        self.config = config
        self.net = UNet(config.backbone)

    def forward(self, inputs: torch.Tensor, physics: torch.Tensor | None) -> torch.Tensor:
        return self.net(inputs, None, physics)[:, 0]

    def inputs(self, counts: torch.Tensor, condition_phase: torch.Tensor) -> torch.Tensor:
        """Stack the network inputs, ``(B, 2, H, W)``: the measured contrast (normalised by each image's mean, so a
        wrong stated dose does not shift it) and the iterative phase over ``phase_scale_rad``."""
        return torch.stack([measured_contrast(counts.float()),
                            condition_phase.float() / self.config.phase_scale_rad], dim=1)
