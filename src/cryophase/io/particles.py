"""Preparing users' particle stacks for retrieval: metadata, what the pixel values mean, electron counts.

Reconstructors take electron counts in the raw-micrograph convention (protein dark). Real stacks come as

* electron counts (mean > 0, Poisson-like): the dose of each image is its mean divided by the pixel area;
* RELION-extracted particles, normalised (background mean 0, sd 1) and usually contrast-inverted (protein
  white), sometimes float16: the dose must be given by the user, and
  :func:`cryophase.conventions.counts_from_relion_normalised` maps them back to pseudo-counts.

:func:`inspect_images` detects which of the two a stack is, and whether it is inverted, from a sample of its
images; every detected property can be overridden, and the result says what was detected and how.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryophase.conventions import counts_from_relion_normalised
from cryophase.errors import CryophaseError
from cryophase.io.cs import read_particles_cs
from cryophase.io.star import IMAGING_COLUMNS, ParticleImages, ParticleTable, read_particles_star
from cryophase.physics.ctf import ctf
from cryophase.physics.forward import ImagingPhysics, dose_from_counts
from cryophase.physics.optics import Optics


@dataclass(frozen=True)
class InspectionConfig:
    """How :func:`inspect_images` decides what a stack holds."""

    #: Images sampled (evenly through the stack) for the statistics.
    n_sample_images: int = 64
    #: A stack with more than this fraction of negative pixels cannot be counts: it is normalised.
    max_negative_fraction_for_counts: float = 0.001
    #: Resolution (Angstrom) of the low-pass used to judge contrast; at least 4 pixels.
    contrast_lowpass_angstrom: float = 20.0
    #: Radius of the central disc (particle) and inner radius of the background annulus, fractions of the box.
    centre_radius_fraction: float = 1 / 6
    background_radius_fraction: float = 0.4
    #: Per-image variance / mean of counts in this range is called Poisson-like (1 for pure shot noise; the
    #: particle's contrast adds to it, detector gain or binning multiplies it).
    poisson_variance_to_mean_range: tuple[float, float] = (0.2, 5.0)
    #: If fewer than this fraction of the sampled images agree on the contrast, the vote is called ambiguous.
    min_agreement_fraction: float = 0.65


def read_particle_table(path: str | Path, *, pixel_size_angstrom: float | None = None,
                        stack: str | Path | None = None, project_root: str | Path | None = None,
                        imaging_only: bool = False) -> ParticleTable:
    """Read particle metadata from a RELION ``.star`` or a cryoSPARC ``.cs`` file.

    Parameters
    ----------
    path : ``.star`` or ``.cs`` file.
    pixel_size_angstrom : overrides the pixel size in the file.
    stack : read images from this MRC stack instead of the stacks the file names.
    project_root : folder that relative image paths are relative to.
    imaging_only : for a STAR file, keep only the columns imaging needs (:data:`IMAGING_COLUMNS`), with image
        names encoded as numbers: bounded memory for millions of particles.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".cs":
        return read_particles_cs(path, pixel_size_angstrom=pixel_size_angstrom, stack=stack,
                                 project_root=project_root)
    if suffix == ".star":
        return read_particles_star(path, pixel_size_angstrom=pixel_size_angstrom, stack=stack,
                                   project_root=project_root, columns=IMAGING_COLUMNS if imaging_only else None)
    raise CryophaseError(f"{path}: unknown particle file type {suffix or '(none)'}; give a RELION .star or a "
                         "cryoSPARC .cs file")


@dataclass(frozen=True)
class ImageConvention:
    """What the pixel values of a stack are, and how that was decided.

    Attributes
    ----------
    normalised : True for RELION-normalised particles, False for electron counts.
    inverted : True if protein is white (RELION ``--invert_contrast``); always False for counts.
    normalised_source, inverted_source : ``"detected"`` or ``"given"`` (by the user's flags).
    report : one line per property saying what was found, for the user.
    """

    normalised: bool
    inverted: bool
    normalised_source: str
    inverted_source: str
    report: tuple[str, ...]


def sample_rows(n_images: int, n_sample: int) -> np.ndarray:
    """Up to ``n_sample`` row indices spread evenly over ``0 .. n_images - 1``."""
    return np.unique(np.linspace(0, n_images - 1, num=min(n_images, n_sample)).round().astype(np.int64))


def negative_fraction(images: torch.Tensor) -> float:
    """Fraction of pixels below zero (counts never are)."""
    return float((images < 0).to(torch.float64).mean())


def contrast_scores(images: torch.Tensor, optics: Optics,
                    config: InspectionConfig = InspectionConfig()) -> torch.Tensor:
    """Per-image sign of the particle's contrast: > 0 when the particle is brighter than the background.

    Each image is phase-flipped with its own CTF (so that every frequency carries the object with the same
    sign), low-pass filtered, and the mean of a central disc is compared with the mean of the background
    annulus, in units of the filtered image's standard deviation. A positive phase object (protein) under the
    cryophase sign convention is dark in raw counts, so a positive score on a normalised stack means it was
    contrast-inverted.

    Parameters
    ----------
    images : torch.Tensor, (B, H, W)
    optics : Optics, B images

    Returns
    -------
    torch.Tensor, (B,)
    """
    b, h, w = images.shape
    x = images.to(torch.float64)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    optics = optics.to(device=x.device, dtype=torch.float64)
    transfer = ctf(optics, (h, w), rfft=True)
    pixel = optics.pixel_size_angstrom[:, None, None]
    resolution = torch.clamp(torch.full_like(pixel, config.contrast_lowpass_angstrom), min=4 * pixel)
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=x.device)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64, device=x.device)[None, :]
    f = torch.sqrt(fy**2 + fx**2)[None] / pixel
    keep = (f <= 1 / resolution).to(torch.float64)
    flipped = torch.fft.irfft2(torch.fft.rfft2(x) * torch.sign(transfer) * keep, s=(h, w))
    yy = torch.arange(h, dtype=torch.float64, device=x.device)[:, None] - h // 2
    xx = torch.arange(w, dtype=torch.float64, device=x.device)[None, :] - w // 2
    r = torch.sqrt(yy**2 + xx**2) / min(h, w)
    centre = r <= config.centre_radius_fraction
    background = r >= config.background_radius_fraction
    difference = flipped[:, centre].mean(dim=1) - flipped[:, background].mean(dim=1)
    return difference / flipped.std(dim=(-2, -1)).clamp_min(torch.finfo(torch.float64).tiny)


def _median_variance_to_mean(images: torch.Tensor) -> float:
    """Median over images of ``var / mean`` (nan when no image has a positive mean)."""
    mean = images.mean(dim=(-2, -1))
    ratio = images.var(dim=(-2, -1))[mean > 0] / mean[mean > 0]
    return float(ratio.median()) if ratio.numel() else math.nan


def _contrast_words(inverted: bool) -> str:
    return "contrast-inverted particles (protein white)" if inverted else "particles that are not inverted (protein dark)"


def inspect_images(images: torch.Tensor, optics: Optics, *, normalised: bool | None = None,
                   inverted: bool | None = None, config: InspectionConfig = InspectionConfig()) -> ImageConvention:
    """Decide whether sampled images are counts or RELION-normalised, and whether they are contrast-inverted.

    Parameters
    ----------
    images : torch.Tensor, (B, H, W): a sample of the stack.
    optics : Optics for those images.
    normalised, inverted : the user's overrides (None: detect).

    Returns
    -------
    ImageConvention
    """
    report = []
    fraction = negative_fraction(images)
    mean, sd = float(images.mean()), float(images.std())
    stats = f"mean {mean:.3g}, sd {sd:.3g}, {100 * fraction:.1f}% negative pixels over {images.shape[0]} images"
    if normalised is None:
        is_normalised = fraction > config.max_negative_fraction_for_counts
        normalised_source = "detected"
        if is_normalised:
            report.append(f"detected RELION-normalised particles ({stats})")
        else:
            ratio = _median_variance_to_mean(images)
            low, high = config.poisson_variance_to_mean_range
            poisson = "Poisson-like" if low < ratio < high else "not Poisson-like: check the gain and units"
            report.append(f"detected electron counts ({stats}; variance/mean {ratio:.3g}, {poisson})")
    else:
        is_normalised = normalised
        normalised_source = "given"
        report.append(f"treating the images as {'RELION-normalised' if normalised else 'electron counts'} "
                      f"as requested ({stats})")
        if not normalised and fraction > config.max_negative_fraction_for_counts:
            raise CryophaseError(f"--counts was given but {100 * fraction:.1f}% of the pixels are negative; "
                                 "electron counts cannot be negative (use --normalised and --dose)")
    if not is_normalised:
        return ImageConvention(False, False, normalised_source, "not applicable", tuple(report))
    if inverted is not None:
        report.append(f"treating them as {_contrast_words(inverted)} as requested")
        return ImageConvention(True, inverted, normalised_source, "given", tuple(report))
    scores = contrast_scores(images, optics, config)
    bright = float((scores > 0).to(torch.float64).mean())
    agreement = max(bright, 1 - bright)
    if agreement < config.min_agreement_fraction:
        report.append(f"contrast is ambiguous ({100 * bright:.0f}% of {len(scores)} sampled particles look "
                      "bright); assuming inverted (protein white, RELION's default); pass --not-inverted if not")
        return ImageConvention(True, True, normalised_source, "assumed", tuple(report))
    is_inverted = bright >= 0.5
    report.append(f"detected {_contrast_words(is_inverted)}: "
                  f"{100 * agreement:.0f}% of {len(scores)} sampled particles agree")
    return ImageConvention(True, is_inverted, normalised_source, "detected", tuple(report))


def to_counts(images: torch.Tensor, optics: Optics, convention: ImageConvention,
              dose_e_per_a2: float | None) -> tuple[torch.Tensor, ImagingPhysics]:
    """Electron counts (protein dark) and the matching :class:`ImagingPhysics` for a batch.

    Parameters
    ----------
    images : torch.Tensor, (B, H, W) as read from the stack.
    optics : Optics, B images (same device and dtype as ``images``).
    convention : from :func:`inspect_images`.
    dose_e_per_a2 : the user's dose; required for normalised images; for counts it overrides the per-image
        ``mean / pixel_size^2``.

    Returns
    -------
    counts : torch.Tensor, (B, H, W), non-negative
    physics : ImagingPhysics with per-image dose
    """
    if convention.normalised:
        if dose_e_per_a2 is None:
            raise CryophaseError("the particles are RELION-normalised, so their electron dose is unknown: pass "
                                 "--dose (e/A^2 per particle image, e.g. 40)")
        dose = torch.full((images.shape[0],), float(dose_e_per_a2), dtype=images.dtype, device=images.device)
        per_pixel = dose * optics.pixel_size_angstrom.to(images) ** 2
        counts = counts_from_relion_normalised(images, per_pixel, inverted=convention.inverted).clamp_min(0)
    else:
        counts = images
        if dose_e_per_a2 is None:
            dose = dose_from_counts(images, optics.pixel_size_angstrom)
        else:
            dose = torch.full((images.shape[0],), float(dose_e_per_a2), dtype=images.dtype, device=images.device)
        if not (dose > 0).all():
            raise CryophaseError("some images have a mean of zero or less, so their dose cannot be taken from the "
                                 "counts; pass --dose, or --normalised if these are normalised particles")
    return counts, ImagingPhysics(optics, dose)


def inspect_stack(images: ParticleImages, table: ParticleTable, *, normalised: bool | None = None,
                  inverted: bool | None = None, config: InspectionConfig = InspectionConfig()) -> ImageConvention:
    """:func:`inspect_images` on an evenly spread sample of a stack."""
    rows = sample_rows(len(images), config.n_sample_images)
    sample = images.read(rows)
    optics = table.optics_for(rows, dtype=torch.float32)
    return inspect_images(sample, optics, normalised=normalised, inverted=inverted, config=config)
