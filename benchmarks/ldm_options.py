"""Do ``ldm``'s measurement-consistency options help? DPS guidance and a short ``ml`` refinement, measured.

Issue 4 asks for two optional ways to pull ``ldm``'s output towards the measured counts and to report whether
each helps: Poisson-likelihood guidance through the decoder during sampling (``guidance_scale``, DPS) and a
short Poisson maximum-likelihood refinement started from the decoded posterior mean (``refine_iterations``).
Particles of the held-out structures are simulated at each dose in the training distribution and retrieved by
``ldm`` (posterior mean of K samples) with each setting, and by ``ml`` and the regression peer for reference.
Reported per row:

* NCC and FRC-0.5 / FRC-0.143 resolution (A) against the truth;
* Poisson NLL per pixel of the measured counts given the phase (mean over particles) minus that of the truth's
  phase: 0 fits the data as well as the truth, > 0 worse; < 0 means the phase fits the noise (or the ice and
  neighbours, which the truth excludes), not that it is better;
* seconds for the batch.

    python benchmarks/ldm_options.py [--weights DIR] [--n 32] [--samples 8] [--steps 20] [--doses 15 30 60]
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import (HELDOUT_STRUCTURES, add_common_arguments, centred_blob, evaluation_config, markdown,
                     mean_frc_resolutions, start)
from cryophase.evaluation.metrics import normalised_cross_correlation
from cryophase.physics.detector import poisson_nll_per_pixel
from cryophase.retrieval.base import get_method
from cryophase.simulation import simulate_batch
from cryophase.specimens.registry import load_specimens

GUIDANCE_SCALES = (0.1, 0.25, 0.5, 1.0)
REFINE_ITERATIONS = (5, 10, 30)


def settings(args) -> dict[str, dict]:
    """Row name -> (method, options)."""
    ldm = dict(weights=args.weights, n_steps=args.steps, samples=args.samples)
    rows = {"ldm": ("ldm", ldm)}
    rows.update({f"ldm, guidance {g:g}": ("ldm", {**ldm, "guidance_scale": g}) for g in GUIDANCE_SCALES})
    rows.update({f"ldm, ml refine {k}": ("ldm", {**ldm, "refine_iterations": k}) for k in REFINE_ITERATIONS})
    rows["ldm, guidance 0.5 + ml refine 10"] = ("ldm", {**ldm, "guidance_scale": 0.5, "refine_iterations": 10})
    rows["ml (the condition)"] = ("ml", {})
    rows["regression"] = ("regression", dict(weights=args.weights))
    return rows


def nll_per_pixel(counts: torch.Tensor, physics, phase: torch.Tensor) -> float:
    """Mean Poisson NLL per pixel of ``counts`` given ``phase`` through the forward model."""
    expected = physics.expected_counts(phase.to(physics.dose_e_per_a2.dtype))
    return float(poisson_nll_per_pixel(counts, expected).mean())


def run_dose(dose: float, specimens, methods: dict, args) -> list[dict]:
    config = evaluation_config(dose_e_per_a2=dose)
    batch = simulate_batch(specimens, config, args.n, torch.Generator().manual_seed(args.seed + int(dose)))
    truth_nll = nll_per_pixel(batch.counts, batch.physics, batch.phase)
    rows = []
    outputs = {}
    for name, method in methods.items():
        t = time.perf_counter()
        phase = method.reconstruct(batch.counts, batch.physics,
                                   generator=torch.Generator().manual_seed(args.seed + 1)).phase
        outputs[name] = (phase, time.perf_counter() - t)
    outputs["centred blob (no data)"] = (centred_blob(args.n, config.box_size, config.pixel_size_angstrom, 12.0),
                                         float("nan"))
    for name, (phase, seconds) in outputs.items():
        rows.append({"dose e/A^2": dose, "setting": name,
                     "NCC": float(normalised_cross_correlation(batch.phase, phase).mean()),
                     **mean_frc_resolutions(batch.phase, phase, config.pixel_size_angstrom),
                     "NLL - truth's NLL per pixel": nll_per_pixel(batch.counts, batch.physics, phase) - truth_nll,
                     "seconds": seconds})
    return rows


def verdict(rows: list[dict]) -> list[dict]:
    """Per option and dose: does it beat plain ldm in NCC and in FRC-0.5?"""
    out = []
    for dose in sorted({r["dose e/A^2"] for r in rows}):
        at = {r["setting"]: r for r in rows if r["dose e/A^2"] == dose}
        base = at["ldm"]
        for name, r in at.items():
            if not name.startswith("ldm,"):
                continue
            out.append({"dose e/A^2": dose, "setting": name, "dNCC vs ldm": r["NCC"] - base["NCC"],
                        "dFRC-0.5 A vs ldm (negative is better)": r["frc_0.5_A"] - base["frc_0.5_A"],
                        "helps": bool(r["NCC"] > base["NCC"] and r["frc_0.5_A"] <= base["frc_0.5_A"])})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, n_default=32)
    parser.add_argument("--samples", type=int, default=8, help="K ldm samples per particle")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--doses", type=float, nargs="+", default=[15.0, 30.0, 60.0])
    args = parser.parse_args()
    start(args, "ldm options: DPS guidance and ml refinement")
    specimens = load_specimens([str(p) for p in HELDOUT_STRUCTURES], torch.Generator().manual_seed(0))
    methods = {name: get_method(method, **options) for name, (method, options) in settings(args).items()}
    print(f"{args.n} particles per dose of 4 held-out structures (ice, k3, contrast factor 0.4-1.0); ldm K = "
          f"{args.samples}, {args.steps} steps; {args.threads} threads\n")
    rows = [row for dose in args.doses for row in run_dose(dose, specimens, methods, args)]
    print(markdown(rows))
    print("\n## Does each option help? (higher NCC and no worse FRC-0.5 than plain ldm)\n")
    print(markdown(verdict(rows)))


if __name__ == "__main__":
    main()
