"""The main job: simulate a few particles, retrieve their phase four ways, and show the result.

:func:`run_demo` writes, into one folder,

* ``figure.png``: the paper's Fig. 2 layout (rows of particles; columns truth, measurement, low-passed
  measurement, iterative, low-passed iterative, ``ldm`` and ``ldm``'s uncertainty), shared colour scale per kind,
  axes in Angstrom;
* ``frc.png``: the mean Fourier ring correlation of each method against the truth;
* ``metrics.json``: the metrics table (also printed by the CLI) and provenance;
* ``report.html``: one self-contained page with all of the above.

The measurement is turned into a phase-like image for the metrics by ``(1 - counts / N) / 2`` (protein bright,
no CTF correction), which is what a user sees when looking at a low-passed particle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cryophase.evaluation.figures import Panel, curves_plot, particle_grid
from cryophase.evaluation.frc import lowpass
from cryophase.evaluation.metrics import EvaluationConfig, evaluate_phases
from cryophase.evaluation.report import write_html_report
from cryophase.io.outputs import provenance, write_json_atomic
from cryophase.models.bundle import load_vae, resolve_weights_folder
from cryophase.retrieval.base import get_method
from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.specimens.registry import load_specimens

DEMO_FILES = ("figure.png", "frc.png", "metrics.json", "report.html")


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``cryophase demo``; the CLI takes its defaults from here."""

    #: Particles to simulate and show.
    n_particles: int = 6
    #: Electron dose of every particle, e/A^2 (the paper's regime is 10-80).
    dose_e_per_a2: float = 30.0
    #: Specimen sources: "synthetic", PDB/mmCIF files or MRC maps (see ``cryophase simulate``).
    specimens: tuple[str, ...] = ("synthetic",)
    #: Synthetic proteins drawn when "synthetic" is a source.
    synthetic_pool_size: int = 6
    #: Seed of every random draw (specimens, orientations, noise, diffusion samples).
    seed: int = 0
    #: Samples per particle for ldm's mean and uncertainty map.
    ldm_samples: int = 8
    #: Sampler steps for ldm.
    ldm_steps: int = 20
    #: Resolution of the low-pass filter applied to the measurement and the iterative result, A.
    lowpass_resolution_angstrom: float = EvaluationConfig.lowpass_resolution_angstrom
    #: Folder of model weights (None: the weights shipped with cryophase).
    weights: Path | None = None


@dataclass
class DemoResult:
    metrics: list[dict]
    files: dict[str, Path]
    seconds: float
    notes: list[str] = field(default_factory=list)


def measurement_as_phase(counts: torch.Tensor, counts_per_pixel: torch.Tensor) -> torch.Tensor:
    """A phase-like view of the raw measurement: ``(1 - counts / N) / 2`` (protein bright), (B, H, W)."""
    return 0.5 * (1 - counts / counts_per_pixel.to(counts)[:, None, None])


def _metric_row(name: str, truth: torch.Tensor, estimate: torch.Tensor, pixel: float,
                config: EvaluationConfig) -> tuple[dict, object]:
    ev = evaluate_phases(truth, estimate, pixel, config)
    row = {
        "method": name,
        "ncc": float(ev.per_image["ncc"].mean()),
        "rmse_rad": float(ev.per_image["rmse_rad"].mean()),
        "ssim": float(ev.per_image["ssim"].mean()),
        "frc_0.5_angstrom": ev.mean_frc_resolutions["frc_0.5_angstrom"],
        "frc_0.143_angstrom": ev.mean_frc_resolutions["frc_0.143_angstrom"],
        "ncc_lowpass": float(ev.per_image_lowpass["ncc"].mean()),
    }
    return row, ev


def run_demo(out_dir: str | Path, config: DemoConfig = DemoConfig(), *, device: torch.device | str = "cpu",
             settings_for_provenance: dict | None = None) -> DemoResult:
    """Simulate ``config.n_particles`` particles, run four methods, write figure, FRC plot, JSON and HTML.

    Parameters
    ----------
    out_dir : folder for the outputs (created; the caller decides about overwriting)
    config : DemoConfig
    device : where to compute
    """
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    cpu_generator = torch.Generator().manual_seed(config.seed)

    # The model's grid decides the simulation grid, so the demo shows ldm at its native size.
    folder = resolve_weights_folder(config.weights)
    _, grid = load_vae(folder)
    sim = SimulationConfig(box_size=grid.image_size, pixel_size_angstrom=grid.pixel_size_angstrom,
                           dose_range_e_per_a2=(config.dose_e_per_a2, config.dose_e_per_a2))
    specimens = load_specimens(list(config.specimens), cpu_generator, synthetic_pool_size=config.synthetic_pool_size)
    batch = simulate_batch(specimens, sim, config.n_particles, generator, device=device)
    truth, counts, physics = batch.phase, batch.counts, batch.physics
    pixel = float(physics.optics.pixel_size_angstrom[0])
    eval_config = EvaluationConfig(lowpass_resolution_angstrom=config.lowpass_resolution_angstrom)

    def low(images: torch.Tensor) -> torch.Tensor:
        return lowpass(images, config.lowpass_resolution_angstrom, pixel)

    ldm = get_method("ldm", weights=config.weights, samples=config.ldm_samples, n_steps=config.ldm_steps)
    iterative_name = ldm.condition_method
    n = physics.counts_per_pixel
    measured = measurement_as_phase(counts, n)
    wiener = get_method("wiener").reconstruct(counts, physics, generator=generator).phase
    iterative = get_method(iterative_name).reconstruct(counts, physics, generator=generator).phase
    ldm_result = ldm.reconstruct(counts, physics, generator=generator)

    estimates = {
        "measurement (low-pass)": low(measured),
        "wiener": wiener,
        f"{iterative_name}": iterative,
        f"{iterative_name} (low-pass)": low(iterative),
        f"ldm (mean of {config.ldm_samples})": ldm_result.phase,
    }
    rows, curves = [], {}
    for name, estimate in estimates.items():
        row, ev = _metric_row(name, truth, estimate, pixel, eval_config)
        rows.append(row)
        mean_curve = ev.curves.mean()
        curves[name] = (mean_curve.frequency_per_angstrom(pixel).cpu().numpy()[1:],
                        mean_curve.correlation[0].cpu().numpy()[1:])

    files = {}
    panels = [
        Panel("truth", truth.cpu(), "phase"),
        Panel(f"measurement ({config.dose_e_per_a2:g} e/Å²)", counts.cpu(), "counts"),
        Panel(f"measurement, low-pass {config.lowpass_resolution_angstrom:g} Å", low(counts).cpu(), "counts"),
        Panel(f"iterative ({iterative_name})", iterative.cpu(), "phase"),
        Panel(f"{iterative_name}, low-pass", low(iterative).cpu(), "phase"),
        Panel("ldm", ldm_result.phase.cpu(), "phase"),
    ]
    if ldm_result.uncertainty is not None:
        panels.append(Panel("ldm uncertainty (sd)", ldm_result.uncertainty.cpu(), "uncertainty"))
    files["figure.png"] = particle_grid(panels, pixel, out / "figure.png",
                                        title=f"cryophase demo: {config.n_particles} simulated particles, "
                                              f"{config.dose_e_per_a2:g} e/Å², {pixel:g} Å/px")
    files["frc.png"] = curves_plot(curves, out / "frc.png", xlabel="spatial frequency (1/Å)",
                                   ylabel="FRC against the truth", title="Mean Fourier ring correlation",
                                   hlines={"0.5": 0.5, "0.143": 0.143})
    seconds = time.perf_counter() - start
    prov = provenance(settings_for_provenance if settings_for_provenance is not None else config)
    prov["weights"] = str(folder)
    prov["seconds"] = seconds
    write_json_atomic(out / "metrics.json", {"metrics": rows, "provenance": prov})
    files["metrics.json"] = out / "metrics.json"
    files["report.html"] = write_html_report(
        out / "report.html",
        title="cryophase demo",
        sections=[
            ("What this shows", [
                f"{config.n_particles} particles simulated from {', '.join(config.specimens)} at "
                f"{config.dose_e_per_a2:g} e/Å², {pixel:g} Å/px, with vitreous ice, detector response and "
                "neighbours. The truth is the particle's phase relative to the ice, in radians. Columns of the "
                "same kind share one colour scale.",
            ]),
            ("Particles", [files["figure.png"]]),
            ("Metrics against the truth (mean over particles)", [rows]),
            ("Fourier ring correlation", [files["frc.png"]]),
        ],
        provenance=prov,
    )
    return DemoResult(metrics=rows, files=files, seconds=seconds)
