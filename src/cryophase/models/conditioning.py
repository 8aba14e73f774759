"""What the conditional denoiser sees besides the noisy code ``z_t``.

Always the codec's encoding of the iterative phase estimate, ``E(iterative)`` (the paper's condition). With
``pixel_inputs`` also the measurement itself and the iterative estimate at full resolution, folded onto the code's
grid by pixel-unshuffle (``f * f`` channels each for a codec that shrinks ``f`` times per side): the VAE was trained
on clean phases, so the encoding of a noisy estimate keeps only what the VAE learned to encode. The same function
builds these channels in training (:class:`~cryophase.training.tasks.LDMTask`) and at inference
(:class:`~cryophase.pipeline.LatentPhasePipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ConditioningConfig:
    """The denoiser's condition channels.

    Attributes
    ----------
    pixel_inputs : add the measured contrast (:func:`measured_contrast`) and the iterative phase divided by
        ``phase_scale_rad``, pixel-unshuffled to the code's grid, after ``E(iterative)``.
    phase_scale_rad : the iterative phase's divisor (the VAE's phase scale; set when training starts).
    """

    pixel_inputs: bool = False
    phase_scale_rad: float = 1.0

    def n_channels(self, code_channels: int, factor: int) -> int:
        """Condition channels for a code of ``code_channels`` that is ``factor`` times smaller per side."""
        return code_channels + (2 * factor * factor if self.pixel_inputs else 0)


def measured_contrast(counts: torch.Tensor) -> torch.Tensor:
    """``counts / (their image mean) - 1``, ``(B, H, W)``: about 0 for empty ice, whatever the dose.

    Normalising by each image's own mean, not by the nominal counts per pixel, keeps a learned model's input the
    same when the stated dose is wrong (a phase object scatters but does not absorb, so the mean is the beam).
    """
    mean = counts.mean(dim=(-2, -1), keepdim=True)
    return counts / mean.clamp_min(torch.finfo(counts.dtype).tiny) - 1.0


def condition_channels(config: ConditioningConfig, code: torch.Tensor, condition_phase: torch.Tensor,
                       counts: torch.Tensor | None) -> torch.Tensor:
    """The condition ``(B, n_channels, h, w)``: ``code`` (``E(iterative)``, ``(B, C, h, w)``), then with
    ``pixel_inputs`` the pixel-unshuffled ``[measured_contrast(counts), condition_phase / phase_scale_rad]``
    (``condition_phase`` and ``counts`` ``(B, H, W)`` on the model's grid, ``H = f h``)."""
    if not config.pixel_inputs:
        return code
    if counts is None:
        raise ValueError("this denoiser is conditioned on the measurement too: pass the counts on the model's grid")
    factor = condition_phase.shape[-1] // code.shape[-1]
    if counts.shape != condition_phase.shape or condition_phase.shape[-2:] != (factor * code.shape[-2],
                                                                             factor * code.shape[-1]):
        raise ValueError(f"counts {tuple(counts.shape)}, iterative phase {tuple(condition_phase.shape)} and code "
                         f"{tuple(code.shape)} are not on one grid")
    pixels = torch.stack([measured_contrast(counts.float()).to(code),
                          condition_phase.to(code) / config.phase_scale_rad], dim=1)
    return torch.cat([code, nn.functional.pixel_unshuffle(pixels, factor)], dim=1)
