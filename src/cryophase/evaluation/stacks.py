"""Evaluating MRC stacks of predicted phases against true phases, in batches, into a JSON-ready table."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cryophase.errors import CryophaseError
from cryophase.evaluation.metrics import EvaluationConfig, PhaseEvaluation, evaluate_phases
from cryophase.io.mrc import MrcStack


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _row(metrics: dict[str, torch.Tensor], i: int) -> dict[str, float | None]:
    return {k: _finite_or_none(float(v[i])) for k, v in metrics.items()}


def _means(metrics: dict[str, torch.Tensor]) -> dict[str, float | None]:
    return {k: _finite_or_none(float(v.to(torch.float64).mean())) for k, v in metrics.items()}


def resolve_pixel_size(truth: MrcStack, pred: MrcStack, pixel_size_angstrom: float | None) -> float:
    """``--pixel-size``, else the truth's header, else the prediction's; headers that disagree are an error."""
    if pixel_size_angstrom is not None:
        if not pixel_size_angstrom > 0:
            raise CryophaseError(f"--pixel-size must be positive, got {pixel_size_angstrom}")
        return float(pixel_size_angstrom)
    a, b = truth.pixel_size_angstrom, pred.pixel_size_angstrom
    if a is not None and b is not None and abs(a - b) > 0.01 * a:
        raise CryophaseError(f"pixel sizes differ: {truth.path} says {a:.4g} A, {pred.path} says {b:.4g} A; "
                             "pass --pixel-size to choose")
    value = a if a is not None else b
    if value is None:
        raise CryophaseError(f"neither {truth.path} nor {pred.path} has a pixel size in its header; "
                             "pass --pixel-size (Angstrom)")
    return float(value)


def evaluate_stacks(truth_path: Path, pred_path: Path, *, pixel_size_angstrom: float | None = None,
                    config: EvaluationConfig = EvaluationConfig()) -> PhaseEvaluation:
    """Evaluate two MRC stacks image by image, ``config.batch_size`` images at a time.

    Raises
    ------
    CryophaseError
        For stacks of different lengths or box sizes, disagreeing or missing pixel sizes, non-finite values.
    """
    with MrcStack(truth_path) as truth, MrcStack(pred_path) as pred:
        if len(truth) != len(pred):
            raise CryophaseError(f"{truth_path} holds {len(truth)} images but {pred_path} holds {len(pred)}")
        if truth.shape[1:] != pred.shape[1:]:
            raise CryophaseError(f"image sizes differ: {truth_path} is {truth.shape[1]}x{truth.shape[2]}, "
                                 f"{pred_path} is {pred.shape[1]}x{pred.shape[2]}")
        pixel = resolve_pixel_size(truth, pred, pixel_size_angstrom)
        parts = []
        for begin in range(0, len(truth), config.batch_size):
            rows = slice(begin, begin + config.batch_size)
            a, b = truth.read(rows), pred.read(rows)
            for name, images in ((truth_path, a), (pred_path, b)):
                if not torch.isfinite(images).all():
                    raise CryophaseError(f"{name}: holds non-finite values (NaN or inf)")
            parts.append(evaluate_phases(a, b, pixel, config))
    return PhaseEvaluation.concatenate(parts)


def evaluation_table(result: PhaseEvaluation) -> dict:
    """The JSON-ready table: means, mean-curve crossings, per-image rows and the mean FRC curves."""
    n = len(next(iter(result.per_image.values())))
    frequency = result.curves.frequency_per_angstrom(result.pixel_size_angstrom)
    return {
        "n_images": n,
        "pixel_size_angstrom": result.pixel_size_angstrom,
        "lowpass_resolution_angstrom": result.lowpass_resolution_angstrom,
        "mean": _means(result.per_image),
        "mean_lowpass": _means(result.per_image_lowpass),
        "mean_curve_frc_angstrom": result.mean_frc_resolutions,
        "mean_curve_frc_angstrom_lowpass": result.mean_frc_resolutions_lowpass,
        "per_image": [{"index": i + 1, **_row(result.per_image, i),
                       "lowpass": _row(result.per_image_lowpass, i)} for i in range(n)],
        "frc_curve": {
            "frequency_per_angstrom": frequency.tolist(),
            "mean": result.curves.correlation.mean(dim=0).tolist(),
            "mean_lowpass": result.curves_lowpass.correlation.mean(dim=0).tolist(),
        },
    }
