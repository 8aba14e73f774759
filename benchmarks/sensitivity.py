"""Sensitivity to imperfect metadata: quality when the defocus or the dose handed to the reconstructor is off.

Real defocus comes from CTF fitting (CTFFIND, Gctf, RELION's CtfRefine) and real dose from the exposure record,
and both carry errors. Here held-out particles (structures never used in training) are simulated once in the
training distribution at 30 e/A^2 (simulator defaults at 64 px, 3.5 A/px, contrast factor 0.4-1.0) and
retrieved with the true physics and with physics whose defocus (U and V together) is scaled by 0.90, 0.95, 1.05
and 1.10, or whose dose is scaled by 0.5 and 2. The truth is always the unscaled simulation. ``ldm`` is compared
with its ``regression`` peer and the classical ``ml`` method (which conditions both shipped models: they see the
perturbed defocus through it as well as directly), so the table shows whether a sensitivity belongs to ``ldm``
or to everything that trusts the metadata. The learned methods measure each image's dose from its mean count
(``retrieval.model_grid.with_measured_dose``), so the dose rows test that they ignore a wrong stated dose; ``ml``
alone trusts it.

Every reconstruction starts from a fresh generator with the same seed, so rows of one method differ only in the
perturbation. Reported per row: mean NCC over particles, FRC-0.5 resolution (A) of the particle-averaged FRC curve,
and both differences from the method's unperturbed row (positive dFRC = coarser). "> 224 (none)" means the
particle-averaged FRC is below 0.5 from the first ring on (no crossing inside the box); its difference is "n/a".
The last row is the data-free baseline of ``benchmarks/ldm.py`` (the same centred Gaussian for every particle):
NCC and FRC reward a centred blob, so a method's margin over it is what it took from the data.

    python benchmarks/sensitivity.py [--weights runs/default/weights] [--n 32] [--steps 20] [--samples 1]
        [--threads 2] [--seed 100] [--specimen PATH ...]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from _common import (HELDOUT_STRUCTURES, add_common_arguments, centred_blob, evaluation_config, markdown,
                     mean_frc_resolutions, start)
from cryophase.evaluation.metrics import normalised_cross_correlation
from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import get_method
from cryophase.simulation import simulate_batch
from cryophase.specimens.registry import load_specimens
from ldm import BLOB, BLOB_SD_ANGSTROM

DOSE_E_PER_A2 = 30.0
DEFOCUS_SCALES = (0.90, 0.95, 1.00, 1.05, 1.10)
DOSE_SCALES = (0.5, 2.0)


@dataclass(frozen=True)
class Perturbation:
    """Factors applied to the metadata handed to the reconstructor (the simulation used 1, 1)."""

    defocus_scale: float = 1.0
    dose_scale: float = 1.0

    @property
    def label(self) -> str:
        if self.dose_scale != 1.0:
            return f"dose x{self.dose_scale:g}"
        if self.defocus_scale == 1.0:
            return "none (true metadata)"
        return f"defocus x{self.defocus_scale:.2f}"

    @property
    def is_identity(self) -> bool:
        return self.defocus_scale == 1.0 and self.dose_scale == 1.0


def perturbations() -> list[Perturbation]:
    """The defocus scans (including the true metadata) followed by the dose scans."""
    return ([Perturbation(defocus_scale=s) for s in DEFOCUS_SCALES]
            + [Perturbation(dose_scale=s) for s in DOSE_SCALES])


def perturbed_physics(physics: ImagingPhysics, perturbation: Perturbation) -> ImagingPhysics:
    """``physics`` with DefocusU and DefocusV (A) and the dose (e/A^2) scaled; B images, everything else kept."""
    optics = physics.optics
    optics = optics.replace(defocus_u_angstrom=optics.defocus_u_angstrom * perturbation.defocus_scale,
                            defocus_v_angstrom=optics.defocus_v_angstrom * perturbation.defocus_scale)
    return ImagingPhysics(optics, physics.dose_e_per_a2 * perturbation.dose_scale)


def build_methods(args) -> dict:
    """Reconstructors by row name."""
    ldm_name = "ldm" if args.samples == 1 else f"ldm (mean of {args.samples})"
    return {ldm_name: get_method("ldm", weights=args.weights, n_steps=args.steps, samples=args.samples),
            "regression": get_method("regression", weights=args.weights),
            "ml": get_method("ml")}


def resolution_cell(resolution_angstrom: float, field_of_view_angstrom: float) -> str | float:
    """The FRC-0.5 resolution, or ``> box`` when the curve is below 0.5 from the first ring (no crossing)."""
    if resolution_angstrom >= field_of_view_angstrom:
        return f"> {field_of_view_angstrom:.0f} (none)"
    return resolution_angstrom


def difference_cell(value: float, reference: float, field_of_view_angstrom: float) -> str:
    """``value - reference`` as +x.x, or ``n/a`` when either resolution did not cross 0.5."""
    if max(value, reference) >= field_of_view_angstrom:
        return "n/a"
    return f"{value - reference:+.1f}"


def method_rows(name: str, method, batch, pixel_size_angstrom: float, seed: int) -> list[dict]:
    """One row per perturbation for one method; differences against its unperturbed row."""
    fov = batch.phase.shape[-1] * pixel_size_angstrom
    scores = {}
    for p in perturbations():
        physics = perturbed_physics(batch.physics, p)
        phase = method.reconstruct(batch.counts, physics, generator=torch.Generator().manual_seed(seed)).phase
        frc = mean_frc_resolutions(batch.phase, phase, pixel_size_angstrom)
        scores[p] = {"ncc": float(normalised_cross_correlation(batch.phase, phase).mean()),
                     "frc": frc["frc_0.5_A"]}
    reference = scores[Perturbation()]
    return [{"method": name, "perturbation": p.label, "NCC": s["ncc"], "FRC-0.5 (A)": resolution_cell(s["frc"], fov),
             "dNCC": "-" if p.is_identity else f"{s['ncc'] - reference['ncc']:+.3f}",
             "dFRC-0.5 (A)": "-" if p.is_identity else difference_cell(s["frc"], reference["frc"], fov)}
            for p, s in scores.items()]


def blob_row(batch, pixel_size_angstrom: float) -> dict:
    """The data-free baseline of ``benchmarks/ldm.py`` (same centred Gaussian for every particle): no metadata used."""
    n, size = batch.phase.shape[0], batch.phase.shape[-1]
    blob = centred_blob(n, size, pixel_size_angstrom, BLOB_SD_ANGSTROM)
    frc = mean_frc_resolutions(batch.phase, blob, pixel_size_angstrom)["frc_0.5_A"]
    return {"method": BLOB, "perturbation": "any (uses no metadata)",
            "NCC": float(normalised_cross_correlation(batch.phase, blob).mean()),
            "FRC-0.5 (A)": resolution_cell(frc, size * pixel_size_angstrom),
            "dNCC": "-", "dFRC-0.5 (A)": "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, n_default=32)
    parser.add_argument("--specimen", action="append", default=None,
                        help="held-out structure (repeat; default: the four held-out PDB/mmCIF files)")
    parser.add_argument("--steps", type=int, default=20, help="ldm sampler steps")
    parser.add_argument("--samples", type=int, default=1, help="ldm samples averaged per particle")
    args = parser.parse_args()
    start(args, "Sensitivity to defocus and dose errors in the metadata")
    paths = args.specimen or [str(p) for p in HELDOUT_STRUCTURES]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"structure file(s) not found: {', '.join(missing)} (pass --specimen)")
    specimens = load_specimens(paths, torch.Generator().manual_seed(0))
    config = evaluation_config(dose_e_per_a2=DOSE_E_PER_A2)
    batch = simulate_batch(specimens, config, args.n, torch.Generator().manual_seed(args.seed))
    methods = build_methods(args)
    defocus = batch.physics.optics.defocus_mean_angstrom
    print(f"{args.n} particles of {len(specimens)} held-out structures at {DOSE_E_PER_A2:g} e/A^2, "
          f"{config.box_size} px at {config.pixel_size_angstrom} A/px, true mean defocus "
          f"{float(defocus.min()):.0f}-{float(defocus.max()):.0f} A (so x1.05 is a {0.05 * float(defocus.min()):.0f}-"
          f"{0.05 * float(defocus.max()):.0f} A error); weights: {args.weights or 'shipped'}; ldm {args.steps} steps, "
          f"{args.samples} sample(s); {args.threads} thread(s). ldm and regression run their conditioning method "
          f"({next(iter(methods.values())).condition_method}) on the same perturbed defocus, and measure the dose "
          "from the counts.\n")
    rows = [row for name, method in methods.items()
            for row in method_rows(name, method, batch, config.pixel_size_angstrom, args.seed + 1)]
    rows.append(blob_row(batch, config.pixel_size_angstrom))
    print(markdown(rows))


if __name__ == "__main__":
    main()
