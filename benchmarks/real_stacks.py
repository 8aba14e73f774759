"""``ldm``, the ``regression`` peer and the classical methods on every real particle stack in shared/data.

The stacks are RELION-normalised (none are electron counts), so they are converted to pseudo-counts with
:mod:`cryophase.io.particles` (contrast inversion detected per stack) at an ASSUMED dose of ``--dose`` e/A^2
(30 by default; the true doses are unknown). Every method runs on the native box and pixel size; ``ldm`` and
``regression`` Fourier-rescale to their 64 px, 3.5 A/px grid themselves (their output is zero outside that
224 A field of view). Reported per stack:

* a figure ``real_<stack>.png`` in ``--out`` (rows = particles, columns = input, Topaz, each method's phase);
* measurement consistency per method: the FRC between the measured image and the image predicted from the
  retrieved phase (``ImagingPhysics.expected_counts``), both cropped to the models' field of view, averaged
  over the rings up to each particle's first CTF zero and over particles (1 = the phase explains the data);
* blob indicators for the learned methods on real data: their radially averaged power over that of the Wiener
  output per ring out to 1/8 A^-1 on the model grid (a prior that invents generic particles changes the
  spectrum's shape);
* Topaz-Denoise (Bepler et al. 2020, Nat. Commun. 11, 5208), the denoiser cryo-EM users run to see their
  particles, when ``topaz`` is importable: its pretrained 2D model(s) (``--topaz unet`` by default, what
  ``topaz denoise`` uses) run on the same pseudo-counts the other methods see (protein dark, as in the
  micrographs Topaz was trained on), each particle box as one image, exactly as ``topaz denoise`` treats a single
  micrograph with its default flags (``topaz.denoise.denoise_image``: standardise, denoise, restore mean and sd;
  no patches since every box is smaller than its 1024 px patch). Its consistency is measured in the image domain:
  the FRC between the measured image and the denoised image on the same crop and rings (Topaz outputs an image
  estimate, not a phase; the identity map would score 1, so it is a fidelity check, not a clarity score);
* clarity, for every output: the mean NCC between outputs of different particles (a prior that paints generic
  particles makes them alike; the input's value is the baseline) and, for stacks with a published map and poses
  (trpv1), the agreement with the map's projection at each particle's pose: the FRC of each phase with the
  projected phase, of Topaz's output and of the input with the noise-free image predicted from that phase, per
  band (up to the first CTF zero and beyond it). This is the one ground-truth-like comparison on real data.

Figures show protein WHITE in every column: the input and Topaz's output are negated pseudo-counts (z-scored
with the input's per-particle mean and sd; Topaz has its own colour scale so its full contrast shows), phases are
positive on protein.

Topaz is not a dependency. Install it with ``pip install -e '.[benchmarks]'``; topaz-em 0.3.x also requires
torchvision, which it never imports, so to keep an installed torch pip may instead be run as
``pip install --no-deps 'topaz-em>=0.3,<0.4' h5py`` (h5py is the only extra module its denoiser imports).

    python benchmarks/real_stacks.py [--weights runs/default/weights] [--n 32] [--samples 8] [--dose 30]
        [--topaz unet] [--stacks trpv1 ...] [--threads 2] [--out docs/figures]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from _common import CLASSICAL_METHODS, SHARED_DATA, add_common_arguments, markdown, power_ratio_per_band, start
from cryophase.conventions import interaction_constant_rad_per_volt_angstrom
from cryophase.evaluation.figures import Panel, particle_grid
from cryophase.evaluation.frc import fourier_ring_correlation
from cryophase.evaluation.metrics import normalised_cross_correlation, remove_mean
from cryophase.io.particles import inspect_stack, read_particle_table, sample_rows, to_counts
from cryophase.io.star import ParticleImages
from cryophase.models.grid import to_model_grid
from cryophase.retrieval.base import get_method
from cryophase.simulation.batch import crop_centre
from cryophase.specimens import euler_relion_to_matrix
from cryophase.specimens.maps import DensityMap

POWER_LIMIT_PER_ANGSTROM = 1.0 / 8.0
REAL = SHARED_DATA / "real_particles"
INPUT = "input"
MAP_PHASE = "map phase (where a map exists)"


@dataclass(frozen=True)
class RealStack:
    """A stack: its metadata file, the MRC stack to read where the file names a missing one, and a map of the
    same specimen (refined from these particles' dataset, in the frame of their poses) where one is published."""

    name: str
    metadata: Path
    stack: Path | None = None
    reference_map: Path | None = None


STACKS = (
    RealStack("relion31", REAL / "relion31" / "relion31.star"),
    RealStack("trpv1", REAL / "trpv1" / "trpv1_small_stack.star", REAL / "trpv1" / "trpv1_small_stack.mrcs",
              SHARED_DATA / "maps" / "cryojax" / "trpv1_volume.mrc"),
    RealStack("empiar10076", REAL / "empiar10076" / "empiar_10076_7.star"),
    RealStack("aspire_sample", REAL / "aspire_sample" / "sample_particles_relion31.star"),
    RealStack("cryoet_subtilts", REAL / "cryoet_subtilts" / "sta_testing_bin8.star"),
)


def _state_from_parent_package(pkg: str, path: str, map_location="cpu"):
    """topaz's ``load_state_dict_from_pkg`` with ``'../'`` in ``path`` resolved against parent packages.

    topaz 0.3.20 loads its pretrained models as ``('topaz.denoising.models', '../pretrained/denoise/X.sav')``,
    which ``importlib.resources.files`` only accepts from Python 3.12 (a module as anchor); its fallback,
    ``pkg_resources``, is gone from setuptools >= 81. ``('topaz', 'pretrained/denoise/X.sav')`` loads everywhere.
    """
    from topaz.model.utils import load_state_dict_from_pkg

    package = pkg.rsplit(".", 1)[0]  # the module's package
    while path.startswith("../"):
        package, path = package.rsplit(".", 1)[0], path[3:]
    return load_state_dict_from_pkg(package, path, map_location=map_location)


def topaz_denoiser(name: str, *, use_cuda: bool = False):
    """Topaz's pretrained 2D denoiser ``name`` (``unet``, ``unet-small``, ``fcnn``, ``affine``) from its wheel."""
    from topaz.denoise import Denoise
    from topaz.denoising import models

    try:
        return Denoise(name, use_cuda=use_cuda)
    except ValueError:  # "Unable to load model": the packaged-resource lookup above; retry it resolved
        with mock.patch.object(models, "load_state_dict_from_pkg", _state_from_parent_package):
            return Denoise(name, use_cuda=use_cuda)


def topaz_denoise(images: torch.Tensor, denoiser) -> torch.Tensor:
    """``topaz denoise`` with its default flags on each image ``(B, H, W)`` (protein dark) -> ``(B, H, W)``."""
    from topaz.denoise import denoise_image

    out = [torch.from_numpy(np.asarray(denoise_image(image.detach().cpu().float().numpy(), [denoiser],
                                                     use_cuda=denoiser.use_cuda)))
           for image in images]
    return torch.stack(out).to(images)


def first_ctf_zero_ring(physics, shape: tuple[int, int]) -> torch.Tensor:
    """Per image, the first Fourier ring (along kx) where the CTF changes sign, ``(B,)`` int, at least 2."""
    transfer = physics.ctf(shape, rfft=True)[:, 0, :]  # ky = 0, kx = 0 .. W/2
    flips = torch.sign(transfer[:, 1:]) != torch.sign(transfer[:, :-1])
    n = transfer.shape[-1] - 1
    first = torch.where(flips.any(dim=1), torch.argmax(flips.to(torch.int8), dim=1) + 1,
                        torch.full((flips.shape[0],), n, dtype=torch.long, device=flips.device))
    return first.clamp_min(2)


def band_frc(a: torch.Tensor, b: torch.Tensor, physics, field_pixels: int) -> tuple[float, float]:
    """Mean over particles of the FRC of ``a`` and ``b`` ``(B, H, W)``, both centre-cropped to ``field_pixels``,
    averaged over rings 1 .. first CTF zero and over the rings beyond it up to Nyquist."""
    size = min(field_pixels, a.shape[-1], a.shape[-2])
    frc = fourier_ring_correlation(remove_mean(crop_centre(a, size).double()),
                                   remove_mean(crop_centre(b, size).double())).correlation
    zero = first_ctf_zero_ring(physics, (size, size))
    low = [float(frc[i, 1:int(zero[i]) + 1].mean()) for i in range(a.shape[0])]
    high = [float(frc[i, int(zero[i]) + 1:size // 2 + 1].mean()) for i in range(a.shape[0])]
    return float(np.mean(low)), float(np.mean(high))


def measurement_consistency(counts: torch.Tensor, physics, phase: torch.Tensor, field_pixels: int) -> float:
    """Mean over particles of the FRC (rings 1 .. first CTF zero) of measured vs predicted counts, cropped."""
    return band_frc(counts, physics.expected_counts(phase.to(counts)), physics, field_pixels)[0]


def image_consistency(counts: torch.Tensor, denoised: torch.Tensor, physics, field_pixels: int) -> float:
    """The image-domain analogue for a denoiser: FRC of measured vs denoised image, same crop and rings."""
    return band_frc(counts, denoised, physics, field_pixels)[0]


def cross_particle_ncc(phase: torch.Tensor) -> float:
    """Mean NCC between the outputs of different particles ``(B, H, W)`` (high = they all look alike)."""
    b = phase.shape[0]
    i, j = torch.triu_indices(b, b, offset=1)
    return float(normalised_cross_correlation(phase[i], phase[j]).mean()) if i.numel() else float("nan")


def radius_of_gyration_angstrom(phase: torch.Tensor, pixel_size_angstrom: float) -> torch.Tensor:
    """Apparent size of each particle in phases ``(B, H, W)``: the radius of gyration (A) of the phase above the
    median of its outermost 2-pixel frame (the background level), about its own centre of mass; ``(B,)``."""
    b, h, w = phase.shape
    frame = torch.ones(h, w, dtype=torch.bool)
    frame[2:-2, 2:-2] = False
    background = phase[:, frame].median(dim=1).values
    mass = (phase - background[:, None, None]).clamp_min(0).double()
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    total = mass.sum(dim=(-2, -1)).clamp_min(1e-30)
    cy, cx = (mass * y).sum(dim=(-2, -1)) / total, (mass * x).sum(dim=(-2, -1)) / total
    r2 = (y - cy[:, None, None]) ** 2 + (x - cx[:, None, None]) ** 2
    return ((mass * r2).sum(dim=(-2, -1)) / total).sqrt() * pixel_size_angstrom


def ncc_own_and_other(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NCC of each output ``(B, H, W)`` with its own target and, averaged, with the OTHER particles' targets,
    each ``(B,)``; the difference is the particle-specific part (a generic blob matches every target alike)."""
    b = output.shape[0]
    i, j = torch.meshgrid(torch.arange(b), torch.arange(b), indexing="ij")
    matrix = normalised_cross_correlation(output[i.reshape(-1)], target[j.reshape(-1)]).reshape(b, b)
    other = (matrix.sum(dim=1) - matrix.diagonal()) / max(b - 1, 1)
    return matrix.diagonal(), other


def reference_phase(run: dict) -> torch.Tensor:
    """Phase ``(B, H, W)`` of the stack's map projected at each particle's RELION pose (rlnAngleRot/Tilt/Psi;
    the particle sits at ``-rlnOriginX/YAngst`` from the box centre), ``sigma_e`` times the projected potential."""
    particles = run["table"].particles.iloc[run["rows"]]
    angles = torch.from_numpy(np.ascontiguousarray(particles[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]],
                                                  dtype=np.float64))
    origin = torch.from_numpy(np.ascontiguousarray(particles[["rlnOriginYAngst", "rlnOriginXAngst"]], dtype=np.float64))
    volume = DensityMap.from_file(run["stack"].reference_map)
    optics = run["physics"].optics
    projection = volume.project(euler_relion_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2]), -origin,
                                tuple(run["counts"].shape[-2:]), float(optics.pixel_size_angstrom[0]))
    sigma = interaction_constant_rad_per_volt_angstrom(optics.voltage_kv.double())
    return (projection.potential_volt_angstrom * sigma[:, None, None]).to(run["counts"])


def reference_rows(run: dict, field_pixels: int) -> list[dict]:
    """Agreement of every output with its noise-free target from the map (``run["reference"]``, the phase),
    cropped to ``field_pixels``: phases with the projected phase, images (input, Topaz) with the counts that
    phase predicts.

    Real-space NCC is what the eye sees (suppressing noise raises it), but a smooth centred blob correlates with
    any projected phase, so the NCC with the other particles' targets is the baseline and ``own - other`` the
    particle-specific clarity. The band FRCs are not changed by any isotropic linear filter: they show what
    information an output kept, not how clean it looks.
    """
    phase = run["reference"]
    image = run["physics"].expected_counts(phase)
    outputs = {INPUT: (run["counts"], image), **{k: (v, image) for k, v in run["denoised"].items()},
               **{k: (r.phase.to(phase), phase) for k, r in run["results"].items()}}
    size = min(field_pixels, *phase.shape[-2:])
    rows = []
    for name, (output, target) in outputs.items():
        own, other = ncc_own_and_other(crop_centre(output, size).double(), crop_centre(target, size).double())
        low, high = band_frc(target, output, run["physics"], field_pixels)
        rows.append({"stack": run["stack"].name, "output": name,
                     "compared with": "map phase" if target is phase else "map image (CTF, counts)",
                     "NCC, own pose": float(own.mean()), "NCC, other particles' poses": float(other.mean()),
                     "own - other": float((own - other).mean()), "sd of own - other": float((own - other).std()),
                     "FRC to 1st CTF zero": low, "FRC 1st zero to Nyquist": high})
    return rows


def run_stack(stack: RealStack, methods: dict, denoisers: dict, args) -> dict:
    table = read_particle_table(stack.metadata, stack=stack.stack)
    images = ParticleImages(table)
    convention = inspect_stack(images, table)
    rows = sample_rows(len(images), args.n)
    raw = images.read(rows).float()
    optics = table.optics_for(rows, dtype=torch.float32)
    counts, physics = to_counts(raw, optics, convention, args.dose)
    results, denoised, seconds = {}, {}, {}
    for name, method in methods.items():
        t = time.perf_counter()
        results[name] = method.reconstruct(counts, physics, generator=torch.Generator().manual_seed(args.seed))
        seconds[name] = time.perf_counter() - t
    for name, denoiser in denoisers.items():
        t = time.perf_counter()
        denoised[name] = topaz_denoise(counts, denoiser)
        seconds[name] = time.perf_counter() - t
    return {"stack": stack, "table": table, "convention": convention, "raw": raw, "counts": counts,
            "physics": physics, "results": results, "denoised": denoised, "seconds": seconds, "rows": rows,
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
    on_grid = {name: to_model_grid(run["results"][name].phase.float(), pixel, grid.pixel_size_angstrom,
                                   grid.image_size) for name in ["wiener", *learned]}
    rows = []
    for name in learned:
        _, ratio = power_ratio_per_band(on_grid["wiener"], on_grid[name], grid.pixel_size_angstrom,
                                        POWER_LIMIT_PER_ANGSTROM)
        low, high = ratio[: len(ratio) // 2], ratio[len(ratio) // 2:]
        rows.append({"stack": run["stack"].name, "method": name,
                     "power/Wiener, low half of rings": float(np.mean(low)),
                     "power/Wiener, high half (to 1/8 A^-1)": float(np.mean(high)),
                     "min": float(ratio.min()), "max": float(ratio.max())})
    return rows


def outputs_in_field(run: dict, field_pixels: int) -> dict[str, torch.Tensor]:
    """Every output (and the map's projected phase, where the stack has a map) centre-cropped to the models'
    field of view on the native grid (input and Topaz negated: protein white like the phases)."""
    size = min(field_pixels, *run["counts"].shape[-2:])
    images = {INPUT: -run["counts"], **{k: -v for k, v in run["denoised"].items()},
              **{k: r.phase.to(run["counts"]) for k, r in run["results"].items()}}
    if "reference" in run:
        images[MAP_PHASE] = run["reference"]
    return {k: crop_centre(v, size) for k, v in images.items()}


def protein_white(images: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Counts-like images ``(B, H, W)`` (protein dark) negated and z-scored with the measured counts' statistics."""
    mean = counts.mean(dim=(-2, -1), keepdim=True)
    return (mean - images) / counts.std(dim=(-2, -1), keepdim=True)


def figure(run: dict, out: Path, ldm_name: str, learned: list[str]) -> Path:
    """Rows = particles; columns = input, Topaz, phases, ldm sd (and the map's noise-free image and phase where
    the stack has a map). Protein white everywhere; one colour scale per group (input; Topaz; learned phases;
    classical phases; sd; map image; map phase) so each group shows at its full contrast."""
    r, counts = run["results"], run["counts"]
    panels = [Panel("input (protein white)", protein_white(counts, counts), "input z-score")]
    panels += [Panel(name, protein_white(image, counts), "Topaz, input z-score") for name, image in
               run["denoised"].items()]
    panels += [Panel(name, res.phase, "phase, learned (rad)" if name in learned else "phase, classical (rad)")
               for name, res in r.items()]
    if r[ldm_name].uncertainty is not None:
        panels.append(Panel("ldm sd", r[ldm_name].uncertainty, "uncertainty"))
    if "reference" in run:
        panels += [Panel("map: noise-free image", protein_white(run["physics"].expected_counts(run["reference"]),
                                                                 counts), "map image, input z-score"),
                   Panel("map: projected phase", run["reference"], "map phase (rad)")]
    pixel = float(run["physics"].optics.pixel_size_angstrom[0])
    return particle_grid(panels, pixel, out / f"real_{run['stack'].name}.png",
                         title=f"{run['stack'].name}: real particles, protein white, assumed dose "
                               f"{run['dose']:g} e/Å²; one colour scale per colour bar")


def topaz_denoisers(names: list[str]) -> dict:
    """``{"topaz <name>": denoiser}``, empty (with a printed reason) when ``topaz`` is not importable."""
    if not names:
        return {}
    if importlib.util.find_spec("topaz") is None:
        print("Topaz-Denoise: skipped, `topaz` is not importable (install: `pip install -e '.[benchmarks]'`).\n")
        return {}
    from importlib.metadata import version

    print(f"Topaz-Denoise: topaz-em {version('topaz-em')}, pretrained 2D model(s) {', '.join(names)}, run as "
          "`topaz denoise` runs on one micrograph with default flags, on the pseudo-counts (protein dark).\n")
    return {f"topaz {name}": topaz_denoiser(name) for name in names}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, n_default=32, out_default="docs/figures")
    parser.add_argument("--samples", type=int, default=8, help="K ldm samples per particle")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dose", type=float, default=30.0, help="ASSUMED dose, e/A^2 (the stacks are normalised)")
    parser.add_argument("--classical", nargs="*", default=list(CLASSICAL_METHODS))
    parser.add_argument("--stacks", nargs="*", default=[s.name for s in STACKS], help="stacks to run (default all)")
    parser.add_argument("--topaz", nargs="*", default=["unet"],
                        help="Topaz pretrained 2D denoisers (unet unet-small fcnn affine; the flag alone: skip Topaz)")
    args = parser.parse_args()
    start(args, "Real particle stacks: ldm, regression peer, classical methods and Topaz-Denoise")
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
    denoisers = topaz_denoisers(args.topaz)
    out = Path(args.out)
    consistency, blobs, alike, reference, speed, figures, sizes = [], [], [], [], [], [], []
    for stack in (s for s in STACKS if s.name in args.stacks):
        run = run_stack(stack, methods, denoisers, args)
        run["dose"] = args.dose
        print(describe(run))
        field = field_pixels_at(float(run["physics"].optics.pixel_size_angstrom[0]))
        row = {"stack": stack.name}
        for name, result in run["results"].items():
            row[name] = measurement_consistency(run["counts"], run["physics"], result.phase, field)
        for name, image in run["denoised"].items():
            row[f"{name} (image domain)"] = image_consistency(run["counts"], image, run["physics"], field)
        consistency.append(row)
        blobs += blob_rows(run, grid, [ldm_name, "regression"])
        if stack.reference_map is not None and stack.reference_map.exists():
            run["reference"] = reference_phase(run)
            reference += reference_rows(run, field)
        alike.append({"stack": stack.name, MAP_PHASE: float("nan"),
                      **{k: cross_particle_ncc(v) for k, v in outputs_in_field(run, field).items()}})
        in_field = outputs_in_field(run, field)
        pixel = float(run["physics"].optics.pixel_size_angstrom[0])
        sizes.append({"stack": stack.name, "field of view A": round(in_field[ldm_name].shape[-1] * pixel),
                      **{k: float(radius_of_gyration_angstrom(in_field[k].float(), pixel).mean())
                         for k in (MAP_PHASE, ldm_name, "regression") if k in in_field}})
        speed.append({"stack": stack.name, **{k: len(run["rows"]) / v for k, v in run["seconds"].items()}})
        figures.append(str(figure(run, out, ldm_name, [ldm_name, "regression"])))
    print("\n## Measurement consistency: FRC(measured, predicted from the phase) up to the first CTF zero\n")
    if denoisers:
        print("Topaz columns are measured DIFFERENTLY: FRC(measured, denoised image) on the same crop and rings, "
              "with no forward model (a denoiser that changed nothing would score 1; this is fidelity, not "
              "clarity).\n")
    print(markdown(consistency))
    print("\n## Clarity on real data, with a map: agreement of each output with the map projected at the "
          "particle's pose\n")
    print("Phases are compared with the projected phase, images (input, Topaz) with the noise-free counts that "
          "phase predicts through the CTF (each output with the noise-free version of itself); the map was refined "
          "from the particles' dataset, so it is a reference, not an independent truth. Cropped to the models' "
          "field of view; means over particles. Real-space NCC is what the eye sees, but a smooth centred blob "
          "correlates with ANY particle's projected phase (phase targets are dominated by low frequencies, CTF "
          "images are not), so compare `own - other` (NCC with the particle's own pose minus that with the other "
          "particles' poses): it is the particle-specific signal. FRCs are blind to isotropic filtering (a "
          "denoiser's noise suppression does not raise them).\n")
    print(markdown(reference))
    print("\n## Cross-particle NCC of each output (cropped to the models' field of view; input and Topaz negated)\n")
    print("Mean NCC between the outputs of DIFFERENT particles: outputs that all look alike (generic blobs) score "
          "high; the input's value is the data's own baseline and, where a map exists, the map's projected phases give "
          "the level real particles of that stack share. Not a clarity score by itself.\n")
    print(markdown(alike))
    print("\n## Apparent particle size: radius of gyration (A) of the phase above its border level, in the models' "
          "field of view\n")
    print("The projection of a uniform sphere of radius R has R_g = sqrt(2/5) R = 0.63 R, so a 50S ribosomal "
          "subunit (EMPIAR-10076, roughly 230 A across) gives about 70 A. Where the stack has a map, its projected "
          "phase at each particle's pose is the reference. Means over particles.\n")
    print(markdown(sizes))
    print("\n## Blob indicators on real data (model grid; Wiener output as the reference spectrum)\n")
    print(markdown(blobs))
    print("\n## Speed, particles/s\n")
    print(f"Machine load average over the last 1/5/15 min at the end: "
          f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs (other jobs share them; "
          "speeds are comparable between columns, not with runs at a different load).\n")
    print(markdown(speed))
    print("\nfigures: " + ", ".join(figures))


if __name__ == "__main__":
    main()
