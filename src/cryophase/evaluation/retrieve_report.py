"""``cryophase report``: an HTML report for any ``retrieve`` output, with or without a truth.

Without a truth it shows the input particles, the retrieved phase, the uncertainty (for sampling methods) and the
radially averaged power spectra of input and phase; with a truth it adds the metrics and FRC curves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryophase.errors import CryophaseError
from cryophase.evaluation.frc import ring_sums
from cryophase.evaluation.figures import Panel, curves_plot, particle_grid
from cryophase.evaluation.metrics import EvaluationConfig, evaluate_phases
from cryophase.evaluation.report import write_html_report
from cryophase.io.mrc import MrcStack
from cryophase.io.outputs import provenance
from cryophase.retrieve_stack import LEGACY_UNCERTAINTY_STACK, UNCERTAINTY_STACK


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``cryophase report``; the CLI takes its defaults from here."""

    #: Particles shown in the figure (the first ones of the stack).
    n_show: int = 6
    #: Particles used for the power spectra and metrics (the first ones).
    n_statistics: int = 512


def radial_power_spectrum(images: torch.Tensor, pixel_size_angstrom: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean radially averaged power spectrum of ``(B, H, W)`` images (mean removed), with frequencies in 1/A."""
    b, h, w = images.shape
    centred = images - images.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(centred).abs().pow(2).mean(dim=0, keepdim=True)
    sums = ring_sums(power)[0]
    counts = ring_sums(torch.ones_like(power))[0]
    n_rings = sums.shape[0]
    spectrum = (sums / counts.clamp_min(1)).numpy()
    frequency = np.arange(n_rings) / (min(h, w) * pixel_size_angstrom)
    return frequency[1:], spectrum[1:]


def _read_first(path: Path, n: int) -> tuple[torch.Tensor, float | None]:
    with MrcStack(path) as stack:
        return stack.read(slice(0, min(n, len(stack)))), stack.pixel_size_angstrom


def make_retrieve_report(retrieve_dir: str | Path, out_html: str | Path, *, truth: str | Path | None = None,
                         config: ReportConfig = ReportConfig()) -> Path:
    """Write a self-contained HTML report for the ``retrieve`` output in ``retrieve_dir``.

    Parameters
    ----------
    retrieve_dir : folder with phases.mrcs, phases.star and retrieve.json (and uncertainty.mrcs for ldm with K > 1).
    out_html : the report to write.
    truth : optional MRC stack of true phases (radians) in the same order.
    """
    from cryophase.io.particles import read_particle_table
    from cryophase.io.star import ParticleImages

    folder = Path(retrieve_dir)
    meta_path = folder / "retrieve.json"
    if not meta_path.is_file():
        raise CryophaseError(f"{folder}: not a `cryophase retrieve` output folder (no retrieve.json)")
    meta = json.loads(meta_path.read_text())
    phases, pixel = _read_first(folder / "phases.mrcs", config.n_statistics)
    if pixel is None:
        raise CryophaseError(f"{folder / 'phases.mrcs'}: no pixel size in the header")
    sd_paths = [p for p in (folder / UNCERTAINTY_STACK, folder / LEGACY_UNCERTAINTY_STACK) if p.is_file()]
    sd = _read_first(sd_paths[0], config.n_show)[0] if sd_paths else None

    settings = meta.get("settings", {})
    input_path = Path(meta["input"])
    notes = []
    try:
        table = read_particle_table(input_path, pixel_size_angstrom=settings.get("pixel_size_angstrom"),
                                    stack=settings.get("stack"))
        with ParticleImages(table) as images:
            inputs = images.read(np.arange(min(len(images), config.n_statistics)))
    except Exception as exc:  # the input may have moved since; the report still shows the phases
        notes.append(f"input {input_path} could not be read again ({exc}); input panels are omitted")
        inputs = None

    n_show = min(config.n_show, phases.shape[0])
    panels = []
    if inputs is not None:
        panels.append(Panel("input particle (as given)", inputs[:n_show], "input"))
    panels.append(Panel(f"phase ({meta.get('method', '?')})", phases[:n_show], "phase"))
    if sd is not None:
        panels.append(Panel("uncertainty (sd)", sd[:n_show], "uncertainty"))
    truth_stack = None
    if truth is not None:
        with MrcStack(Path(truth)) as truth_file, MrcStack(folder / "phases.mrcs") as phase_file:
            if len(truth_file) != len(phase_file):
                raise CryophaseError(f"{truth} holds {len(truth_file)} images but {folder / 'phases.mrcs'} holds "
                                     f"{len(phase_file)}; the truth must be the same particles in the same order")
        truth_stack, _ = _read_first(Path(truth), config.n_statistics)
        if truth_stack.shape[1:] != phases.shape[1:]:
            raise CryophaseError(f"{truth}: box {tuple(truth_stack.shape[1:])} differs from the phases' "
                                 f"{tuple(phases.shape[1:])}")
        n_common = min(truth_stack.shape[0], phases.shape[0])
        truth_stack, phases = truth_stack[:n_common], phases[:n_common]
        panels.insert(0, Panel("truth", truth_stack[:n_show], "phase"))
    out_html = Path(out_html)
    assets = out_html.parent
    stem = out_html.stem
    figure = particle_grid(panels, pixel, assets / f"{stem}_particles.png",
                           title=f"{folder}: first {n_show} particles, {pixel:g} Å/px")
    spectra = {"phase": radial_power_spectrum(phases, pixel)}
    if inputs is not None:
        spectra["input"] = radial_power_spectrum(inputs, pixel)
    if truth_stack is not None:
        spectra["truth"] = radial_power_spectrum(truth_stack, pixel)
    # normalise each spectrum to its low-frequency mean so that input (counts) and phase share an axis
    normalised = {k: (f, p / max(float(np.mean(p[: max(1, len(p) // 8)])), 1e-30)) for k, (f, p) in spectra.items()}
    power_png = curves_plot(normalised, assets / f"{stem}_power.png", xlabel="spatial frequency (1/Å)",
                            ylabel="radial power (relative to low frequencies)", title="Power spectra", logy=True)
    sections = [
        ("Run", [f"method {meta.get('method')}, {meta.get('n_particles')} particles from {input_path}, "
                 f"{meta.get('seconds', float('nan')):.1f} s", *meta.get("notes", []),
                 *meta.get("input_convention", {}).get("report", []), *notes]),
        ("Particles", [figure]),
        ("Power spectra", [power_png]),
    ]
    if truth_stack is not None:
        ev = evaluate_phases(truth_stack, phases, pixel, EvaluationConfig())
        rows = [{"metric": k, "mean": float(v.mean()), "lowpass mean": float(ev.per_image_lowpass[k].mean())}
                for k, v in ev.per_image.items()]
        mean_curve = ev.curves.mean()
        frc_png = curves_plot({"FRC": (mean_curve.frequency_per_angstrom(pixel).numpy()[1:],
                                       mean_curve.correlation[0].numpy()[1:])},
                              assets / f"{stem}_frc.png", xlabel="spatial frequency (1/Å)",
                              ylabel="FRC against the truth", title="Fourier ring correlation",
                              hlines={"0.5": 0.5, "0.143": 0.143})
        sections += [("Metrics against the truth", [rows]), ("Fourier ring correlation", [frc_png])]
    return write_html_report(out_html, title=f"cryophase report: {folder}", sections=sections,
                             provenance={"retrieve": meta, "report": provenance(config)})
