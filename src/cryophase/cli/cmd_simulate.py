"""``cryophase simulate``: a simulated particle data set with its truth phases and RELION metadata."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import torch
import typer

from cryophase.cli._common import prepare_output_dir, provenance, resolve_device, user_errors
from cryophase.cli.main import app
from cryophase.conventions import looks_like_micrometres
from cryophase.errors import CryophaseError
from cryophase.simulation.config import SimulationConfig
from cryophase.simulation.dataset import OUTPUT_FILES, simulate_dataset

_DEFAULTS = SimulationConfig()


def parse_range(text: Optional[str], option: str, default: tuple[float, float]) -> tuple[float, float]:
    """``"40"`` -> (40, 40); ``"10,80"`` or ``"10:80"`` -> (10, 80); None -> ``default``."""
    if text is None:
        return default
    parts = text.replace(":", ",").split(",")
    try:
        values = [float(p) for p in parts if p.strip()]
    except ValueError:
        raise CryophaseError(f"{option} {text!r}: expected a number or MIN,MAX") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2 or values[0] > values[1]:
        raise CryophaseError(f"{option} {text!r}: expected a number or MIN,MAX with MIN <= MAX")
    return values[0], values[1]


def _range_help(text: str, default: tuple[float, float]) -> str:
    return f"{text}: one value or MIN,MAX (default {default[0]:g},{default[1]:g})."


@app.command()
@user_errors
def simulate(
    out: Path = typer.Argument(..., help="Output folder for particles.mrcs, phases.mrcs, particles.star, "
                                         "simulation.json."),
    n: int = typer.Option(..., "--n", help="Number of particles."),
    specimen: List[str] = typer.Option(["synthetic"], "--specimen",
                                       help="'synthetic' (random pseudo-proteins), a PDB/mmCIF file, an MRC map, or a .mrcs stack of phase images (rad at 300 kV); repeat "
                                            "for several."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same bytes."),
    dose: Optional[str] = typer.Option(None, "--dose", help=_range_help("Exposure, e/A^2",
                                                                      _DEFAULTS.dose_range_e_per_a2)),
    defocus: Optional[str] = typer.Option(None, "--defocus", help=_range_help("Mean underfocus, A",
                                                                            _DEFAULTS.defocus_range_angstrom)),
    ice_thickness: Optional[str] = typer.Option(None, "--ice-thickness", help=_range_help(
        "Ice thickness, A", _DEFAULTS.ice_thickness_range_angstrom)),
    contrast_factor: Optional[str] = typer.Option(None, "--contrast-factor", help=_range_help(
        "Imaged / true protein contrast (1 = the ideal model)", _DEFAULTS.contrast_factor_range)),
    box: int = typer.Option(_DEFAULTS.box_size, "--box", help="Box size, pixels."),
    pixel_size: float = typer.Option(_DEFAULTS.pixel_size_angstrom, "--pixel-size", help="Pixel size, A."),
    detector: str = typer.Option(_DEFAULTS.detector, "--detector",
                                 help="k2, k3, falcon4, ideal, or a RELION MTF STAR file."),
    noiseless: bool = typer.Option(_DEFAULTS.noiseless, "--noiseless",
                                   help="Write the expected counts instead of noisy counts."),
    no_ice: bool = typer.Option(not _DEFAULTS.ice, "--no-ice", help="Particles in vacuum instead of vitreous ice."),
    energy_filter: bool = typer.Option(_DEFAULTS.energy_filter, "--energy-filter",
                                       help="Zero-loss energy filter: drop inelastically scattered electrons."),
    neighbour_probability: float = typer.Option(_DEFAULTS.neighbour_probability, "--neighbour-probability",
                                                help="Probability of each neighbouring particle near the edge."),
    contamination_probability: float = typer.Option(_DEFAULTS.contamination_probability,
                                                    "--contamination-probability",
                                                    help="Probability of an ice-contamination blob at the edge."),
    shift_sd: float = typer.Option(_DEFAULTS.shift_sd_pixels, "--shift-sd",
                                   help="Standard deviation of the off-centre shift, pixels."),
    chunk_size: int = typer.Option(256, "--chunk-size", help="Particles simulated and written at a time."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace results already in OUT."),
    force: bool = typer.Option(False, "--force", help="Run even if --defocus looks like micrometres."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    """Simulate particles (ice, detector, neighbours, shifts) with their truth phases; see simulation.json."""
    from cryophase.specimens.registry import load_specimens

    if n < 1:
        raise CryophaseError(f"--n must be at least 1, got {n}")
    dose_range = parse_range(dose, "--dose", _DEFAULTS.dose_range_e_per_a2)
    if not dose_range[0] > 0:
        raise CryophaseError(f"--dose must be positive (e/A^2), got {dose}")
    defocus_range = parse_range(defocus, "--defocus", _DEFAULTS.defocus_range_angstrom)
    if looks_like_micrometres(torch.tensor(defocus_range)) and not force:
        raise CryophaseError(f"--defocus {defocus}: looks like micrometres; the defocus is in Angstrom (e.g. "
                             "15000). Pass --force to use the values as Angstrom")
    config = replace(
        _DEFAULTS,
        box_size=box,
        pixel_size_angstrom=pixel_size,
        dose_range_e_per_a2=dose_range,
        defocus_range_angstrom=defocus_range,
        ice_thickness_range_angstrom=parse_range(ice_thickness, "--ice-thickness",
                                                 _DEFAULTS.ice_thickness_range_angstrom),
        contrast_factor_range=parse_range(contrast_factor, "--contrast-factor", _DEFAULTS.contrast_factor_range),
        detector=detector,
        noiseless=noiseless,
        ice=not no_ice,
        energy_filter=energy_filter,
        neighbour_probability=neighbour_probability,
        contamination_probability=contamination_probability,
        shift_sd_pixels=shift_sd,
    )
    prepare_output_dir(out, list(OUTPUT_FILES), overwrite=overwrite)
    torch_device = resolve_device(device)
    specimens = load_specimens(list(specimen), torch.Generator().manual_seed(seed))
    record = provenance({"specimen": list(specimen), "seed": seed, "chunk_size": chunk_size, "device": device})
    star = simulate_dataset(out, n, specimens, config, seed, chunk_size, device=torch_device, provenance=record)
    typer.echo(f"simulated {n} particles ({box}x{box} at {pixel_size:g} A/px) -> {star}")
