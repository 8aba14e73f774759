"""``ldm``, the ``regression`` peer and the classical methods on every real particle stack in shared/data.

The stacks are RELION-normalised (none are electron counts), so they are converted to pseudo-counts with
:mod:`cryophase.io.particles` (contrast inversion detected per stack) at an ASSUMED dose of ``--dose`` e/A^2
(30 by default; the true doses are unknown). Every method runs on the native box and pixel size; ``ldm`` and
``regression`` Fourier-rescale to their 64 px, 3.5 A/px grid themselves (their output is zero outside that
224 A field of view). Reported per stack:

* a figure ``real_<stack>.png`` in ``--out`` (rows = particles, columns = input, each method's phase);
* measurement consistency per method: the FRC between the measured image and the image predicted from the
  retrieved phase (``ImagingPhysics.expected_counts``), both cropped to the models' field of view, averaged
  over the rings up to each particle's first CTF zero and over particles (1 = the phase explains the data);
* blob indicators for the learned methods on real data: their radially averaged power over that of the Wiener
  output per ring out to 1/8 A^-1 on the model grid (a prior that invents generic particles changes the
  spectrum's shape), and the mean NCC between outputs of DIFFERENT particles (generic blobs all look alike;
  compare with Wiener's value);
* Topaz-Denoise, if ``topaz`` is importable (it is not a dependency).

    python benchmarks/real_stacks.py [--weights runs/default/weights] [--n 32] [--samples 8] [--dose 30]
        [--threads 2] [--out docs/figures]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from _common import CLASSICAL_METHODS, SHARED_DATA, add_common_arguments, markdown, power_ratio_per_band, start
from cryophase.evaluation.figures import Panel, particle_grid
from cryophase.evaluation.frc import fourier_ring_correlation
from cryophase.evaluation.metrics import normalised_cross_correlation
from cryophase.io.particles import inspect_stack, read_particle_table, sample_rows, to_counts
from cryophase.io.star import ParticleImages
from cryophase.models.grid import to_model_grid
from cryophase.retrieval.base import get_method
from cryophase.simulation.batch import crop_centre

POWER_LIMIT_PER_ANGSTROM = 1.0 / 8.0
REAL = SHARED_DATA / "real_particles"


@dataclass(frozen=True)
class RealStack:
    """A stack: its metadata file and, where the file names a missing stack, the MRC stack to read instead."""

    name: str
    metadata: Path
    stack: Path | None = None


STACKS = (
    RealStack("relion31", REAL / "relion31" / "relion31.star"),
    RealStack("trpv1", REAL / "trpv1" / "trpv1_small_stack.star", REAL / "trpv1" / "trpv1_small_stack.mrcs"),
    RealStack("empiar10076", REAL / "empiar10076" / "empiar_10076_7.star"),
    RealStack("aspire_sample", REAL / "aspire_sample" / "sample_particles_relion31.star"),
    RealStack("cryoet_subtilts", REAL / "cryoet_subtilts" / "sta_testing_bin8.star"),
)


def first_ctf_zero_ring(physics, shape: tuple[int, int]) -> torch.Tensor:
    """Per image, the first Fourier ring (along kx) where the CTF changes sign, ``(B,)`` int, at least 2."""
    transfer = physics.ctf(shape, rfft=True)[:, 0, :]  # ky = 0, kx = 0 .. W/2
    flips = torch.sign(transfer[:, 1:]) != torch.sign(transfer[:, :-1])
    n = transfer.shape[-1] - 1
    first = torch.where(flips.any(dim=1), torch.argmax(flips.to(torch.int8), dim=1) + 1,
                        torch.full((flips.shape[0],), n, dtype=torch.long, device=flips.device))
    return first.clamp_min(2)


def measurement_consistency(counts: torch.Tensor, physics, phase: torch.Tensor, field_pixels: int) -> float:
    """Mean over particles of the FRC (rings 1 .. first CTF zero) of measured vs predicted counts, cropped."""
    predicted = physics.expected_counts(phase.to(counts))
    size = min(field_pixels, counts.shape[-1], counts.shape[-2])
    a = crop_centre(counts, size).double()
    b = crop_centre(predicted, size).double()
    frc = fourier_ring_correlation(a - a.mean(dim=(-2, -1), keepdim=True), b - b.mean(dim=(-2, -1), keepdim=True))
    zero = first_ctf_zero_ring(physics, (size, size))
    values = [float(frc.correlation[i, 1:int(zero[i]) + 1].mean()) for i in range(counts.shape[0])]
    return float(np.mean(values))


def cross_particle_ncc(phase: torch.Tensor) -> float:
    """Mean NCC between the outputs of different particles ``(B, H, W)`` (high = they all look alike)."""
    b = phase.shape[0]
    i, j = torch.triu_indices(b, b, offset=1)
    return float(normalised_cross_correlation(phase[i], phase[j]).mean()) if i.numel() else float("nan")


def run_stack(stack: RealStack, methods: dict, args) -> dict:
    table = read_particle_table(stack.metadata, stack=stack.stack)
    images = ParticleImages(table)
    convention = inspect_stack(images, table)
    rows = sample_rows(len(images), args.n)
    raw = images.read(rows).float()
    optics = table.optics_for(rows, dtype=torch.float32)
    counts, physics = to_counts(raw, optics, convention, args.dose)
    results, seconds = {}, {}
    for name, method in methods.items():
        t = time.perf_counter()
        results[name] = method.reconstruct(counts, physics, generator=torch.Generator().manual_seed(args.seed))
        seconds[name] = time.perf_counter() - t
    return {"stack": stack, "table": table, "convention": convention, "raw": raw, "counts": counts,
            "physics": physics, "results": results, "seconds": seconds, "rows": rows,
            "clamped": float((counts <= 0).float().mean())}


def describe(run: dict) -> str:
    raw, p = run["raw"], run["physics"].optics
    return (f"- **{run['stack'].name}** ({run['stack'].metadata.name}"
            f"{', stack ' + run['stack'].stack.name if run['stack'].stack else ''}): {len(run['rows'])} of "
            f"{len(run['table'])} particles, {raw.shape[-1]} px at {float(p.pixel_size_angstrom[0]):.3g} A/px, "
            f"{float(p.voltage_kv[0]):g} kV, defocus {float(p.defocus_u_angstrom.min()):.0f}-"
            f"{float(p.defocus_u_angstrom.max()):.0f} A; input sd {float(raw.std()):.3g}; "
            + "; ".join(run["convention"].report)
            + f"; {100 * run['clamped']:.1f}% of pseudo-count pixels clamped at 0")


def blob_rows(run: dict, grid, learned: list[str]) -> list[dict]:
    pixel = float(run["physics"].optics.pixel_size_angstrom[0])
    on_grid = {name: to_model_grid(r.phase.float(), pixel, grid.pixel_size_angstrom, grid.image_size)
               for name, r in run["results"].items()}
    rows = []
    for name in learned:
        _, ratio = power_ratio_per_band(on_grid["wiener"], on_grid[name], grid.pixel_size_angstrom,
                                        POWER_LIMIT_PER_ANGSTROM)
        low, high = ratio[: len(ratio) // 2], ratio[len(ratio) // 2:]
        rows.append({"stack": run["stack"].name, "method": name,
                     "power/Wiener, low half of rings": float(np.mean(low)),
                     "power/Wiener, high half (to 1/8 A^-1)": float(np.mean(high)),
                     "min": float(ratio.min()), "max": float(ratio.max()),
                     "cross-particle NCC": cross_particle_ncc(on_grid[name]),
                     "Wiener cross-particle NCC": cross_particle_ncc(on_grid["wiener"])})
    return rows


def figure(run: dict, out: Path, ldm_name: str) -> Path:
    r = run["results"]
    panels = [Panel("input (normalised)", run["raw"], "input")]
    panels += [Panel(name, res.phase, "phase") for name, res in r.items()]
    if r[ldm_name].uncertainty is not None:
        panels.append(Panel("ldm sd", r[ldm_name].uncertainty, "uncertainty"))
    pixel = float(run["physics"].optics.pixel_size_angstrom[0])
    return particle_grid(panels, pixel, out / f"real_{run['stack'].name}.png",
                         title=f"{run['stack'].name}: real particles, assumed dose {run['dose']:g} e/Å²")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, n_default=32, out_default="docs/figures")
    parser.add_argument("--samples", type=int, default=8, help="K ldm samples per particle")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dose", type=float, default=30.0, help="ASSUMED dose, e/A^2 (the stacks are normalised)")
    parser.add_argument("--classical", nargs="*", default=list(CLASSICAL_METHODS))
    args = parser.parse_args()
    start(args, "Real particle stacks: ldm, regression peer and classical methods")
    ldm_name = f"ldm (K={args.samples})"
    methods = {ldm_name: get_method("ldm", weights=args.weights, n_steps=args.steps, samples=args.samples),
               "regression": get_method("regression", weights=args.weights),
               **{m: get_method(m) for m in args.classical}}
    if "wiener" not in methods:
        methods["wiener"] = get_method("wiener")
    grid = methods[ldm_name].grid
    field_pixels_at = lambda pixel: round(grid.image_size * grid.pixel_size_angstrom / pixel)
    print(f"Assumed dose {args.dose:g} e/A^2 for every stack (RELION-normalised particles carry no dose); "
          f"up to {args.n} particles per stack; ldm {args.steps} steps, conditioning "
          f"`{methods[ldm_name].condition_method}`; model grid {grid.image_size} px at "
          f"{grid.pixel_size_angstrom} A/px.\n")
    if importlib.util.find_spec("topaz") is None:
        print("Topaz-Denoise: skipped, `topaz` is not importable (not a cryophase dependency; not installed here).\n")
    else:
        print("Topaz-Denoise: `topaz` is importable but no comparison is wired up yet (it denoises micrographs, "
              "not phases; see docs/benchmarks.md).\n")
    out = Path(args.out)
    consistency, blobs, speed, figures = [], [], [], []
    for stack in STACKS:
        run = run_stack(stack, methods, args)
        run["dose"] = args.dose
        print(describe(run))
        pixel = float(run["physics"].optics.pixel_size_angstrom[0])
        row = {"stack": stack.name}
        for name, result in run["results"].items():
            row[name] = measurement_consistency(run["counts"], run["physics"], result.phase, field_pixels_at(pixel))
        consistency.append(row)
        blobs += blob_rows(run, grid, [ldm_name, "regression"])
        speed.append({"stack": stack.name, **{k: len(run["rows"]) / v for k, v in run["seconds"].items()}})
        figures.append(str(figure(run, out, ldm_name)))
    print("\n## Measurement consistency: FRC(measured, predicted from the phase) up to the first CTF zero\n")
    print(markdown(consistency))
    print("\n## Blob indicators on real data (model grid; Wiener output as the reference spectrum)\n")
    print(markdown(blobs))
    print("\n## Speed, particles/s\n")
    print(markdown(speed))
    print("\nfigures: " + ", ".join(figures))


if __name__ == "__main__":
    main()
