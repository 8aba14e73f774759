"""The identity "codec" of the pixel-space peer of the latent diffusion model.

:class:`PixelCodec` stands where :class:`~cryophase.models.vae.PhaseVAE` stands in
:class:`~cryophase.pipeline.LatentPhasePipeline` and :class:`~cryophase.training.tasks.LDMTask`: its
``encode``/``decode`` pair only divides/multiplies by ``phase_scale_rad`` and adds/removes the channel axis, so the
same denoiser family and the same sampler run directly on the ``(B, 1, H, W)`` phase instead of the
``(B, C, H/f, W/f)`` latent. That is the comparison the paper argues from (diffusion in pixel space costs more for
the same quality); ``benchmarks/cost.py`` measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PixelCodecConfig:
    """The one fixed scaling of a :class:`PixelCodec`.

    Attributes
    ----------
    phase_scale_rad : phases are divided by it before the denoiser and multiplied after. Training sets it to the
        power of two nearest the training phases' standard deviation (:func:`power_of_two_scale`), so the
        denoiser sees roughly unit-variance images and ``decode(encode(phase))`` is exact in floating point.
    """

    phase_scale_rad: float = 1.0


def power_of_two_scale(scale: float) -> float:
    """The power of two nearest ``scale`` on a log scale (division and multiplication by it are exact)."""
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"a phase scale must be positive and finite, got {scale}")
    return 2.0 ** round(math.log2(scale))


class PixelCodec(nn.Module):
    """Phase ``(B, H, W)`` radians <-> normalised phase image ``(B, 1, H, W)``; no learned parameters."""

    def __init__(self, config: PixelCodecConfig):
        super().__init__()
        self.config = config

    def encode(self, phase: torch.Tensor) -> torch.Tensor:
        """``phase / phase_scale_rad`` with a channel axis: ``(B, H, W)`` -> ``(B, 1, H, W)``."""
        if phase.ndim != 3:
            raise ValueError(f"PixelCodec expects (B, H, W) phases, got {tuple(phase.shape)}")
        return (phase / self.config.phase_scale_rad)[:, None]

    def decode(self, image: torch.Tensor) -> torch.Tensor:
        """Phases ``(B, H, W)`` in radians from normalised images ``(B, 1, H, W)``."""
        if image.ndim != 4 or image.shape[1] != 1:
            raise ValueError(f"PixelCodec decodes (B, 1, H, W) images, got {tuple(image.shape)}")
        return image[:, 0] * self.config.phase_scale_rad
