"""Shared helpers of the benchmark scripts: arguments, held-out data, simulation settings, tables, metrics glue.

Benchmarks import this as ``from _common import ...`` (Python puts the script's folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cryophase.evaluation.frc import FrcCurves, fourier_ring_correlation, frc_resolutions_angstrom
from cryophase.evaluation.metrics import remove_mean
from cryophase.evaluation.retrieve_report import radial_power_spectrum
from cryophase.simulation import SimulationConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"
#: Structures never used in training (see /work/runs/train_specimens.txt for what was).
HELDOUT_STRUCTURES = tuple(SHARED_DATA / "structures" / name for name in ("1aki.pdb", "3o5r.pdb", "5h73.pdb",
                                                                           "7gsa.cif"))
#: Every classical (non-learned) reconstructor.
CLASSICAL_METHODS = ("wiener", "phase-flip", "gs", "raf", "hio", "raar", "ml")
#: Contrast factor range of the held-out benchmarks (the rest are the simulator's defaults): the range the session-4
#: weights were trained on, kept so that numbers stay comparable across sessions. benchmarks/ldm.py's
#: ``--contrast-factor`` evaluates at another, e.g. 0.3-0.6, the level benchmarks/realism.py matched to real stacks.
TRAINING_CONTRAST_FACTOR_RANGE = (0.4, 1.0)


def command_line() -> str:
    """The exact command that started this process, shell-quoted."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def add_common_arguments(parser: argparse.ArgumentParser, *, n_default: int, out_default: str | None = None) -> None:
    """``--weights``, ``--threads``, ``--n``, ``--seed`` and (when ``out_default`` is given) ``--out``."""
    parser.add_argument("--weights", default=None, help="weights folder (default: the weights shipped with cryophase)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--n", type=int, default=n_default, help=f"particles (default {n_default})")
    parser.add_argument("--seed", type=int, default=100, help="seed of every random draw")
    if out_default is not None:
        parser.add_argument("--out", default=out_default, help=f"folder for PNG figures (default {out_default})")


def start(args: argparse.Namespace, title: str) -> None:
    """Set the thread count and print the title and the exact command line."""
    torch.set_num_threads(args.threads)
    print(f"# {title}\n\n`{command_line()}`\n")


def evaluation_config(*, dose_e_per_a2: float | None = None, ideal: bool = False,
                      contrast_factor_range: tuple[float, float] = TRAINING_CONTRAST_FACTOR_RANGE) -> SimulationConfig:
    """The held-out benchmarks' distribution (simulator defaults, contrast factor 0.4-1.0), at one dose if given.

    ``ideal``: vacuum, ideal detector, no radiation damage, no neighbours or contamination (the same optics).
    """
    config = SimulationConfig(contrast_factor_range=contrast_factor_range)
    if dose_e_per_a2 is not None:
        config = replace(config, dose_range_e_per_a2=(dose_e_per_a2, dose_e_per_a2))
    if ideal:
        config = replace(config, ice=False, ice_background=False, detector="ideal", radiation_damage=False,
                         neighbour_probability=0.0, contamination_probability=0.0)
    return config


def markdown(rows: list[dict], digits: int = 3) -> str:
    """A markdown table with the keys of the first row as columns; floats to ``digits`` significant digits."""
    if not rows:
        return "(no rows)"
    cols = list(rows[0])

    def fmt(v) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v)

    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows])


def mean_frc_resolutions(truth: torch.Tensor, pred: torch.Tensor, pixel_size_angstrom: float) -> dict[str, float]:
    """FRC-0.5 and FRC-0.143 resolution (A) of the FRC curve averaged over the ``(B, H, W)`` pairs."""
    curves = fourier_ring_correlation(truth.double(), pred.double()).mean()
    res = frc_resolutions_angstrom(curves, pixel_size_angstrom)
    return {"frc_0.5_A": float(res["frc_0.5_angstrom"][0]), "frc_0.143_A": float(res["frc_0.143_angstrom"][0])}


def mean_frc_above(curves: FrcCurves, pixel_size_angstrom: float, min_frequency_per_angstrom: float) -> float:
    """Mean of a (batch-averaged) FRC curve over rings at or above ``min_frequency_per_angstrom`` (to Nyquist)."""
    keep = curves.frequency_per_angstrom(pixel_size_angstrom) >= min_frequency_per_angstrom
    return float(curves.correlation[0, keep].mean())


def power_ratio_per_band(truth: torch.Tensor, pred: torch.Tensor, pixel_size_angstrom: float,
                         max_frequency_per_angstrom: float) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power of ``pred`` over that of ``truth`` (images pooled), per ring up to the limit.

    Returns
    -------
    frequency (1/A), ratio : arrays over the rings ``0 < k <= max_frequency_per_angstrom``
    """
    f, p_truth = radial_power_spectrum(truth.double(), pixel_size_angstrom)
    _, p_pred = radial_power_spectrum(pred.double(), pixel_size_angstrom)
    keep = f <= max_frequency_per_angstrom + 1e-12
    return f[keep], p_pred[keep] / np.maximum(p_truth[keep], 1e-30)


def particle_support(truth: torch.Tensor, *, fraction_of_max: float = 0.05, dilation_pixels: int = 2) -> torch.Tensor:
    """Pixels inside the particle: ``|truth| > fraction * max |truth|`` per image, dilated; ``(B, H, W)`` bool."""
    peak = truth.abs().amax(dim=(-2, -1), keepdim=True)
    inside = (truth.abs() > fraction_of_max * peak).float()
    size = 2 * dilation_pixels + 1
    dilated = torch.nn.functional.max_pool2d(inside[:, None], size, stride=1, padding=dilation_pixels)[:, 0]
    return dilated > 0


def calibration(truth: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor, support: torch.Tensor,
                z: float = 1.645) -> dict[str, float]:
    """Coverage of ``mean +- z sd`` over the support and the sd-error correlation over particles.

    Each image's mean is removed from truth and prediction first (the phase offset is not measured).

    Returns
    -------
    dict with ``coverage`` (fraction of support pixels whose truth lies in the interval; 0.90 for z = 1.645
    and a calibrated Gaussian posterior) and ``sd_rmse_pearson`` (Pearson correlation over particles between
    the mean sd and the RMSE, both over the particle's support).
    """
    error = remove_mean(truth.double()) - remove_mean(mean.double())
    sd = sd.double()
    weights = support.double()
    inside = (error.abs() <= z * sd).double()
    coverage = float((inside * weights).sum() / weights.sum())
    n_inside = weights.sum(dim=(-2, -1)).clamp_min(1)
    sd_particle = (sd * weights).sum(dim=(-2, -1)) / n_inside
    rmse_particle = ((error**2 * weights).sum(dim=(-2, -1)) / n_inside).sqrt()
    pearson = float(torch.corrcoef(torch.stack([sd_particle, rmse_particle]))[0, 1])
    return {"coverage": coverage, "sd_rmse_pearson": pearson}


def centred_blob(n: int, size: int, pixel_size_angstrom: float, sd_angstrom: float) -> torch.Tensor:
    """A data-free baseline: the same centred Gaussian ``(n, size, size)`` for every particle (peak 1).

    Learned priors on centred particles start from this; a method must beat it to show it used the data.
    """
    axis = (torch.arange(size, dtype=torch.float32) - size // 2) * pixel_size_angstrom
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    return torch.exp(-r2 / (2 * sd_angstrom**2)).expand(n, size, size).clone()
