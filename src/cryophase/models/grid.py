"""Move particle images between their own grid (box, pixel size) and a model's fixed grid.

Rescaling is Fourier cropping/padding (torch-fourier-rescale); the box is then centre-cropped or padded to the
model's size with ``fill``. :func:`from_model_grid` undoes :func:`to_model_grid`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_fourier_rescale import fourier_rescale_2d


def _crop_or_pad(images: torch.Tensor, shape: tuple[int, int], fill: float) -> torch.Tensor:
    """Centre crop or pad ``(B, H, W)`` to ``shape`` (centre pixel ``N // 2`` kept at ``N // 2``)."""
    out = images
    for dim, target in ((-2, shape[0]), (-1, shape[1])):
        n = out.shape[dim]
        if n > target:
            start = n // 2 - target // 2
            out = out.narrow(dim, start, target)
        elif n < target:
            before = target // 2 - n // 2
            after = target - n - before
            pad = (before, after, 0, 0) if dim == -1 else (0, 0, before, after)
            out = F.pad(out, pad, value=fill)
    return out


def _rescaled_shape(shape: tuple[int, int], source_angstrom: float, target_angstrom: float) -> tuple[int, int]:
    return tuple(max(1, round(n * source_angstrom / target_angstrom)) for n in shape)


def to_model_grid(images: torch.Tensor, pixel_size_angstrom: float, model_pixel_size_angstrom: float,
                  model_size: int, *, fill: float = 0.0) -> torch.Tensor:
    """``(B, H, W)`` at ``pixel_size_angstrom`` -> ``(B, model_size, model_size)`` at the model's pixel size."""
    out = images
    if abs(pixel_size_angstrom - model_pixel_size_angstrom) > 1e-6 * model_pixel_size_angstrom:
        shape = _rescaled_shape(images.shape[-2:], pixel_size_angstrom, model_pixel_size_angstrom)
        out, _ = fourier_rescale_2d(images, target_shape=shape)
    return _crop_or_pad(out, (model_size, model_size), fill)


def from_model_grid(images: torch.Tensor, pixel_size_angstrom: float, model_pixel_size_angstrom: float,
                    shape: tuple[int, int], *, fill: float = 0.0) -> torch.Tensor:
    """Inverse of :func:`to_model_grid`: back to ``shape`` (H, W) at ``pixel_size_angstrom``."""
    rescaled = _rescaled_shape(shape, pixel_size_angstrom, model_pixel_size_angstrom)
    out = _crop_or_pad(images, rescaled, fill)
    if tuple(rescaled) != tuple(shape):
        out, _ = fourier_rescale_2d(out, target_shape=tuple(shape))
    return out
