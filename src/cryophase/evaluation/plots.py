"""Figures for evaluation reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cryophase.evaluation.frc import (  # noqa: E402
    FRC_THRESHOLD_GOLD_STANDARD,
    FRC_THRESHOLD_HALF,
    FrcCurves,
    half_bit_threshold,
)
from cryophase.io.outputs import atomic_path  # noqa: E402


def plot_frc(curves: FrcCurves, pixel_size_angstrom: float, path: str | Path, *,
             curves_lowpass: FrcCurves | None = None, title: str = "Fourier ring correlation") -> Path:
    """Save FRC curves against spatial frequency (1/Angstrom) with the 0.5, 0.143 and 1/2-bit thresholds.

    Individual images are thin grey lines, the image average a thick line (and the low-pass average dashed,
    when given). The top axis labels the resolution in Angstrom.

    Parameters
    ----------
    curves : FrcCurves, correlation (B, R)
    pixel_size_angstrom : float
    path : where to write the PNG.

    Returns
    -------
    Path of the written file.
    """
    path = Path(path)
    frequency = curves.frequency_per_angstrom(pixel_size_angstrom).cpu().numpy()
    correlation = curves.correlation.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for row in correlation[: min(len(correlation), 50)]:
        ax.plot(frequency[1:], row[1:], color="0.75", linewidth=0.6)
    ax.plot(frequency[1:], correlation.mean(axis=0)[1:], color="C0", linewidth=2,
            label=f"mean of {len(correlation)} image(s)")
    if curves_lowpass is not None:
        low = curves_lowpass.correlation.detach().cpu().numpy().mean(axis=0)
        ax.plot(frequency[1:], low[1:], color="C2", linewidth=1.5, linestyle="--", label="mean, low-pass filtered")
    ax.axhline(FRC_THRESHOLD_HALF, color="C1", linewidth=0.8, linestyle=":", label="0.5")
    ax.axhline(FRC_THRESHOLD_GOLD_STANDARD, color="C3", linewidth=0.8, linestyle=":", label="0.143")
    ax.plot(frequency[1:], half_bit_threshold(curves.n_pixels).cpu().numpy()[1:], color="C4", linewidth=0.8,
            linestyle="-.", label="1/2 bit")
    ax.set_xlim(0, frequency[-1])
    ax.set_ylim(-0.2, 1.05)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FRC")
    ax.set_title(title)
    top = ax.secondary_xaxis("top")
    ticks = [t for t in ax.get_xticks() if 0 < t <= frequency[-1]]
    top.set_xticks(ticks)
    top.set_xticklabels([f"{1 / t:.3g}" for t in ticks])
    top.set_xlabel("resolution (Å)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path

