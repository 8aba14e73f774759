"""Figures in the layout of the paper's Fig. 2: rows of particles, columns of methods.

Colour scales are shared per *kind* of image (phase in radians, counts, uncertainty in radians), so columns of
the same kind are directly comparable; axes are in Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cryophase.io.outputs import atomic_path  # noqa: E402

_CMAPS = {"phase": "gray", "counts": "gray", "input": "gray", "uncertainty": "magma", "power": "viridis"}
_UNITS = {"phase": "phase (rad)", "counts": "electrons / px", "input": "input values", "uncertainty": "sd (rad)",
          "power": "log10 power"}


@dataclass(frozen=True)
class Panel:
    """One column of a figure: a title, images ``(B, H, W)`` and the kind that sets its colour scale."""

    title: str
    images: torch.Tensor
    kind: str  # one of "phase", "counts", "uncertainty", "power"


def _limits(panels: list[Panel]) -> dict[str, tuple[float, float]]:
    limits = {}
    for kind in {p.kind for p in panels}:
        values = torch.cat([p.images.detach().float().reshape(-1) for p in panels if p.kind == kind])
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            limits[kind] = (0.0, 1.0)
            continue
        lo, hi = torch.quantile(values[:: max(1, values.numel() // 200000)], torch.tensor([0.005, 0.995])).tolist()
        if kind == "uncertainty":
            lo = 0.0
        limits[kind] = (lo, hi if hi > lo else lo + 1e-6)
    return limits


def particle_grid(panels: list[Panel], pixel_size_angstrom: float, path: str | Path, *,
                  title: str | None = None, max_rows: int = 6) -> Path:
    """Save a rows-of-particles x columns-of-panels figure as PNG and return its path.

    Parameters
    ----------
    panels : columns, each with images of shape (B, H, W) (the same B, H and W for all)
    pixel_size_angstrom : for the axes, in Angstrom
    path : output PNG
    """
    path = Path(path)
    n_rows = min(max_rows, int(panels[0].images.shape[0]))
    n_cols = len(panels)
    h, w = panels[0].images.shape[-2:]
    extent = (0, w * pixel_size_angstrom, h * pixel_size_angstrom, 0)
    limits = _limits(panels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols + 0.8, 1.9 * n_rows + 0.6), squeeze=False)
    images_by_kind = {}
    for c, panel in enumerate(panels):
        lo, hi = limits[panel.kind]
        for r in range(n_rows):
            ax = axes[r, c]
            im = ax.imshow(panel.images[r].detach().cpu().float().numpy(), cmap=_CMAPS.get(panel.kind, "gray"),
                           vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
            images_by_kind[panel.kind] = im
            if r == 0:
                ax.set_title(panel.title, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"#{r + 1}  y (Å)", fontsize=7)
            else:
                ax.set_yticklabels([])
            if r == n_rows - 1:
                ax.set_xlabel("x (Å)", fontsize=7)
            else:
                ax.set_xticklabels([])
            ax.tick_params(labelsize=6)
    width = fig.get_size_inches()[0]
    bar_step = 0.95 / width  # figure fraction per colour bar and its labels (about 0.95 inch)
    right = 1 - bar_step * len(images_by_kind) - 0.01
    fig.subplots_adjust(left=0.07 * 8 / max(width, 8) + 0.02, right=right, top=0.9 if title else 0.94, bottom=0.08,
                        wspace=0.08, hspace=0.08)
    for i, (kind, im) in enumerate(sorted(images_by_kind.items())):
        cax = fig.add_axes([right + 0.015 + bar_step * i, 0.15, 0.12 / width, 0.7])
        bar = fig.colorbar(im, cax=cax)
        bar.set_label(_UNITS.get(kind, kind), fontsize=7)
        bar.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def curves_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, xlabel: str, ylabel: str,
                title: str, hlines: dict[str, float] | None = None, logy: bool = False) -> Path:
    """Plot named (x, y) curves, e.g. FRC or power-spectrum ratios, to a PNG."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (x, y) in curves.items():
        ax.plot(np.asarray(x), np.asarray(y), label=name, lw=1.4)
    for name, value in (hlines or {}).items():
        ax.axhline(value, ls="--", lw=0.8, color="gray")
        ax.text(ax.get_xlim()[1], value, f" {name}", va="center", fontsize=7, color="gray")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
