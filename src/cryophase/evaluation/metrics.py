"""Phase-image metrics, batched over ``(B, H, W)``: RMSE, PSNR, SSIM, NCC and FRC crossings.

A phase is only determined up to a constant offset (the mean phase changes no measurement), so RMSE, PSNR and
SSIM subtract each image's mean first (for RMSE this is the best constant offset), and NCC and FRC ignore the
mean by construction. ``evaluate_phases`` computes every metric, also on low-pass-filtered images as in the
paper's comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryophase.evaluation.frc import (
    FrcCurves,
    fourier_ring_correlation,
    frc_resolutions_angstrom,
    lowpass,
)


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of ``cryophase evaluate`` and :func:`evaluate_phases`; the CLI takes its defaults from here."""

    #: Resolution (Angstrom) of the low-pass filter applied before the second set of metrics.
    lowpass_resolution_angstrom: float = 10.0
    #: Width of the low-pass filter's cosine edge, in Fourier rings (1 / (box * pixel size)).
    lowpass_edge_width_rings: float = 2.0
    #: SSIM Gaussian window: sigma 1.5 px truncated at 11 x 11 px, K1 = 0.01, K2 = 0.03 (Wang et al. 2004).
    ssim_sigma_pixels: float = 1.5
    ssim_window_pixels: int = 11
    ssim_k1: float = 0.01
    ssim_k2: float = 0.03
    #: Images evaluated at a time when reading stacks (peak memory is about 40 copies of a batch in float32).
    batch_size: int = 32


def _check_pair(truth: torch.Tensor, pred: torch.Tensor) -> None:
    if truth.ndim != 3 or truth.shape != pred.shape:
        raise ValueError(f"metrics need two (B, H, W) tensors of the same shape, got {tuple(truth.shape)} "
                         f"and {tuple(pred.shape)}")


def remove_mean(images: torch.Tensor) -> torch.Tensor:
    """Subtract each image's mean, ``(B, H, W)`` -> ``(B, H, W)``."""
    return images - images.mean(dim=(-2, -1), keepdim=True)


def data_range(images: torch.Tensor) -> torch.Tensor:
    """Per-image range ``max - min``, ``(B,)``: the peak signal of PSNR and the L of SSIM."""
    flat = images.reshape(images.shape[0], -1)
    return flat.amax(dim=1) - flat.amin(dim=1)


def phase_rmse(truth: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Root-mean-square phase error (radians) after removing the best constant offset, ``(B,)``.

    ``min_c sqrt(mean((pred + c - truth)^2))``, reached at ``c = mean(truth - pred)``.
    """
    _check_pair(truth, pred)
    diff = remove_mean(pred - truth)
    return torch.sqrt((diff**2).mean(dim=(-2, -1)))


def psnr(truth: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB), ``20 log10(range(truth) / rmse)``, offset-invariant, ``(B,)``.

    ``inf`` for a perfect reconstruction.
    """
    rmse = phase_rmse(truth, pred)
    return 20 * torch.log10(data_range(truth) / rmse)


def _gaussian_window(sigma_pixels: float, size_pixels: int, *, dtype, device) -> torch.Tensor:
    x = torch.arange(size_pixels, dtype=dtype, device=device) - (size_pixels - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma_pixels**2))
    return g / g.sum()


def _blur_valid(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Correlate ``(..., H, W)`` images with an ``(n, n)`` window over the valid region, ``(..., H-n+1, W-n+1)``.

    Done by FFT (circular correlation, then the crop where no wrap-around occurs): several times faster than
    ``conv2d`` with one channel on the CPU, and identical to rounding error.
    """
    h, w = images.shape[-2:]
    n = window.shape[-1]
    kernel = torch.zeros(h, w, dtype=images.dtype, device=images.device)
    kernel[:n, :n] = window
    spectrum = torch.fft.rfft2(images) * torch.fft.rfft2(kernel).conj()
    return torch.fft.irfft2(spectrum, s=(h, w))[..., : h - n + 1, : w - n + 1]


def ssim(truth: torch.Tensor, pred: torch.Tensor, *, sigma_pixels: float = EvaluationConfig.ssim_sigma_pixels,
         window_pixels: int = EvaluationConfig.ssim_window_pixels, k1: float = EvaluationConfig.ssim_k1,
         k2: float = EvaluationConfig.ssim_k2) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) after subtracting each image's mean, ``(B,)``.

    Gaussian-weighted local statistics over the valid region (no padding), ``L = range(truth)``.

    Parameters
    ----------
    truth, pred : torch.Tensor, (B, H, W)

    Returns
    -------
    torch.Tensor, (B,), 1 for identical images.
    """
    _check_pair(truth, pred)
    if min(truth.shape[-2:]) < window_pixels:
        raise ValueError(f"SSIM needs images of at least {window_pixels} x {window_pixels} pixels")
    x = remove_mean(truth)
    y = remove_mean(pred)
    g = _gaussian_window(sigma_pixels, window_pixels, dtype=x.dtype, device=x.device)
    stats = _blur_valid(torch.stack([x, y, x * x, y * y, x * y]), g[:, None] * g[None, :])
    mu_x, mu_y = stats[0], stats[1]
    var_x = stats[2] - mu_x**2
    var_y = stats[3] - mu_y**2
    cov = stats[4] - mu_x * mu_y
    big_l = data_range(truth)[:, None, None]
    c1 = (k1 * big_l) ** 2
    c2 = (k2 * big_l) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(-2, -1))


def normalised_cross_correlation(truth: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the pixels of each pair, ``(B,)``; invariant to ``pred -> a * pred + b``, a > 0."""
    _check_pair(truth, pred)
    x = remove_mean(truth).reshape(truth.shape[0], -1)
    y = remove_mean(pred).reshape(pred.shape[0], -1)
    denominator = torch.sqrt((x * x).sum(dim=1) * (y * y).sum(dim=1))
    return (x * y).sum(dim=1) / denominator.clamp_min(torch.finfo(x.dtype).tiny)


def image_metrics(truth: torch.Tensor, pred: torch.Tensor, pixel_size_angstrom: float,
                  config: EvaluationConfig = EvaluationConfig()) -> tuple[dict[str, torch.Tensor], FrcCurves]:
    """Every metric for each image pair.

    Parameters
    ----------
    truth, pred : torch.Tensor, (B, H, W), radians
    pixel_size_angstrom : float

    Returns
    -------
    metrics : dict of name -> torch.Tensor (B,)
        ``rmse_rad``, ``psnr_db``, ``ssim``, ``ncc``, ``frc_0.5_angstrom``, ``frc_0.143_angstrom``,
        ``frc_half_bit_angstrom``.
    curves : FrcCurves, (B, R)
    """
    _check_pair(truth, pred)
    curves = fourier_ring_correlation(truth, pred)
    metrics = {
        "rmse_rad": phase_rmse(truth, pred),
        "psnr_db": psnr(truth, pred),
        "ssim": ssim(truth, pred, sigma_pixels=config.ssim_sigma_pixels, window_pixels=config.ssim_window_pixels,
                     k1=config.ssim_k1, k2=config.ssim_k2),
        "ncc": normalised_cross_correlation(truth, pred),
        **frc_resolutions_angstrom(curves, pixel_size_angstrom),
    }
    return metrics, curves


@dataclass
class PhaseEvaluation:
    """Metrics of a stack of predictions against the truth, raw and low-pass filtered.

    Attributes
    ----------
    per_image, per_image_lowpass : dict of name -> torch.Tensor (B,)
    mean_frc_resolutions, mean_frc_resolutions_lowpass : crossings (Angstrom) of the image-averaged FRC curve.
    curves, curves_lowpass : FrcCurves (B, R)
    pixel_size_angstrom, lowpass_resolution_angstrom : float
    """

    per_image: dict[str, torch.Tensor]
    per_image_lowpass: dict[str, torch.Tensor]
    mean_frc_resolutions: dict[str, float]
    mean_frc_resolutions_lowpass: dict[str, float]
    curves: FrcCurves
    curves_lowpass: FrcCurves
    pixel_size_angstrom: float
    lowpass_resolution_angstrom: float


    @staticmethod
    def concatenate(parts: list["PhaseEvaluation"]) -> "PhaseEvaluation":
        """Join evaluations of consecutive batches of one stack; the mean-curve crossings are recomputed."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]

        def cat_metrics(dicts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            return {k: torch.cat([d[k] for d in dicts]) for k in dicts[0]}

        def cat_curves(items: list[FrcCurves]) -> FrcCurves:
            return FrcCurves(torch.cat([c.correlation for c in items]), items[0].n_pixels,
                             items[0].frequency_cycles_per_pixel)

        curves = cat_curves([p.curves for p in parts])
        curves_low = cat_curves([p.curves_lowpass for p in parts])
        return PhaseEvaluation(
            per_image=cat_metrics([p.per_image for p in parts]),
            per_image_lowpass=cat_metrics([p.per_image_lowpass for p in parts]),
            mean_frc_resolutions=_mean_crossings(curves, first.pixel_size_angstrom),
            mean_frc_resolutions_lowpass=_mean_crossings(curves_low, first.pixel_size_angstrom),
            curves=curves,
            curves_lowpass=curves_low,
            pixel_size_angstrom=first.pixel_size_angstrom,
            lowpass_resolution_angstrom=first.lowpass_resolution_angstrom,
        )


def _mean_crossings(curves: FrcCurves, pixel_size_angstrom: float) -> dict[str, float]:
    return {k: float(v[0]) for k, v in frc_resolutions_angstrom(curves.mean(), pixel_size_angstrom).items()}


def evaluate_phases(truth: torch.Tensor, pred: torch.Tensor, pixel_size_angstrom: float,
                    config: EvaluationConfig = EvaluationConfig()) -> PhaseEvaluation:
    """All metrics on the images as given and after :func:`~cryophase.evaluation.frc.lowpass`.

    Parameters
    ----------
    truth, pred : torch.Tensor, (B, H, W), radians
    pixel_size_angstrom : float
    config : EvaluationConfig (low-pass resolution and edge, SSIM window)
    """
    if not math.isfinite(pixel_size_angstrom) or pixel_size_angstrom <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_angstrom}")
    raw, curves = image_metrics(truth, pred, pixel_size_angstrom, config)
    filtered = [lowpass(t, config.lowpass_resolution_angstrom, pixel_size_angstrom,
                        edge_width_rings=config.lowpass_edge_width_rings) for t in (truth, pred)]
    low, curves_low = image_metrics(*filtered, pixel_size_angstrom, config)
    return PhaseEvaluation(
        per_image=raw,
        per_image_lowpass=low,
        mean_frc_resolutions=_mean_crossings(curves, pixel_size_angstrom),
        mean_frc_resolutions_lowpass=_mean_crossings(curves_low, pixel_size_angstrom),
        curves=curves,
        curves_lowpass=curves_low,
        pixel_size_angstrom=float(pixel_size_angstrom),
        lowpass_resolution_angstrom=float(config.lowpass_resolution_angstrom),
    )
