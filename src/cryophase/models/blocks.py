"""Compact convolutional building blocks shared by the VAE, the denoiser and the regression UNet.

Hand-written rather than diffusers' ``UNet2DModel``/``AutoencoderKL`` blocks so that the default models stay small
enough to train on two CPU cores (see ``benchmarks/ldm.py`` for the measured cost).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def group_norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with at most ``groups`` groups that divide ``channels``."""
    g = math.gcd(channels, groups)
    return nn.GroupNorm(g, channels)


class ResBlock(nn.Module):
    """Pre-activation residual block, optionally modulated by an embedding vector (timestep, physics).

    Input and output are ``(B, C, H, W)``; the embedding is ``(B, embedding_dim)`` or ``None``.
    """

    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int = 0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embed = nn.Linear(embedding_dim, out_channels) if embedding_dim > 0 else None
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        if self.embed is not None:
            h = h + self.embed(nn.functional.silu(embedding))[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Stride-2 convolution: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


def sinusoidal_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of diffusion timesteps, (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


@torch.no_grad()
def initialise(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every convolution and linear layer with an explicit generator (PyTorch's default bounds).

    Weights and biases are uniform in ``+-1/sqrt(fan_in)``, as ``nn.Conv2d``/``nn.Linear`` do with the global
    RNG; norms keep scale 1 and shift 0. Returns ``module``.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            for p in (layer.weight, layer.bias):
                if p is not None:
                    p.copy_((torch.rand(p.shape, generator=generator, device=generator.device) * 2 - 1) * bound)
    return module
