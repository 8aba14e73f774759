"""Metrics for retrieved phases against the truth: RMSE, PSNR, SSIM, NCC, FRC crossings, low-pass variants."""

from cryophase.evaluation.frc import (
    FrcCurves,
    crossing_frequency,
    crossing_resolution_angstrom,
    fourier_ring_correlation,
    frc_resolutions_angstrom,
    half_bit_threshold,
    lowpass,
)
from cryophase.evaluation.metrics import (
    EvaluationConfig,
    PhaseEvaluation,
    evaluate_phases,
    image_metrics,
    normalised_cross_correlation,
    phase_rmse,
    psnr,
    ssim,
)
from cryophase.evaluation.stacks import evaluate_stacks, evaluation_table

__all__ = [
    "EvaluationConfig",
    "FrcCurves",
    "PhaseEvaluation",
    "crossing_frequency",
    "crossing_resolution_angstrom",
    "evaluate_phases",
    "evaluate_stacks",
    "evaluation_table",
    "fourier_ring_correlation",
    "frc_resolutions_angstrom",
    "half_bit_threshold",
    "image_metrics",
    "lowpass",
    "normalised_cross_correlation",
    "phase_rmse",
    "psnr",
    "ssim",
]
