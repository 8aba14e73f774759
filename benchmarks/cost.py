"""Latent vs pixel-space diffusion: what does the VAE buy? Cost and quality on the same held-out particles.

The paper's argument for the latent space is cost: diffusion directly on the phase image costs more for the same
quality. This script measures it in one run. ``--n`` particles of the held-out structures (never used in
training) are simulated at ``--dose`` e/A^2 in the training distribution and retrieved by

* ``ldm``: VAE encoder -> conditional UNet on the 16 x 16 x 4 latent -> VAE decoder (``--weights``);
* ``pixel-diffusion``: the same UNet family, sampler and pipeline on the 64 x 64 phase itself, with the identity
  codec (``--pixel-weights``, from ``cryophase train pixel``), trained on the same data with the same CPU budget;

both with ``--steps`` DDIM steps, K = 1, the same conditioning (``ml``) and the same generator seed. Reported:

* throughput: particles/s end to end (conditioning included) and of the network alone (codec + sampling loop,
  conditioning precomputed; best of ``--repeats``), and network GFLOP per particle (torch's FlopCounterMode over
  the whole pipeline call: convolutions and matrix products of the codec and of every denoiser step);
* a reference row: the latent denoiser's exact UNet applied at 64 px (untrained, random weights: cost only);
* quality: mean NCC to the truth and the FRC-0.5 / FRC-0.143 resolution of the mean FRC curve (the conditioning
  method's own result as a floor), on the held-out particles and on new particles of the training structures
  (read from ``--train-data``'s simulation.json), which separates fitting the training distribution from
  generalising to new structures;
* training: steps, wall time and seconds per step, read from the run folders' ``metrics.csv`` and ``run.json``
  (the latent model also needs its VAE trained first; the runs may have shared the CPU with other jobs), and the
  GFLOP and best wall time of one denoiser training step measured here at each preset's batch size;
* the ratios pixel / latent, with a statement of whether the qualities are equal (within ``NCC_TOLERANCE`` and
  ``FRC_TOLERANCE_ANGSTROM``) so that "cheaper at equal quality" can be judged.

    python benchmarks/cost.py [--weights runs/default/weights] [--pixel-weights ../runs/pixel/weights]
        [--latent-run ../runs/default] [--pixel-run ../runs/pixel] [--n 32] [--dose 30] [--steps 20]
        [--repeats 3] [--threads 1] [--train-data ../runs/train_data] [--skip-reference]
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import REPO, HELDOUT_STRUCTURES, add_common_arguments, evaluation_config, markdown, \
    mean_frc_resolutions, start
from cryophase.evaluation.metrics import normalised_cross_correlation
from cryophase.io.star import read_particles_star
from cryophase.models.blocks import initialise
from cryophase.models.grid import to_model_grid
from cryophase.models.pixel import PixelCodec, PixelCodecConfig
from cryophase.models.unet import UNet
from cryophase.pipeline import LatentPhasePipeline
from cryophase.retrieval.base import get_method
from cryophase.retrieval.model_grid import counts_on_model_grid
from cryophase.simulation import simulate_batch
from cryophase.specimens.registry import load_specimens
from cryophase.training.data import Conditioner, TensorData
from cryophase.training.presets import get_preset
from cryophase.training.tasks import LDMTask, PixelDiffusionTask, VAETask

RUNS = REPO.parent / "runs"
NCC_TOLERANCE = 0.01
FRC_TOLERANCE_ANGSTROM = 0.5
LATENT, PIXEL = "latent (ldm)", "pixel (pixel-diffusion)"
REFERENCE = "latent's UNet at 64 px (untrained)"
VAE_STAGE = "VAE stage"
CODE_CACHE = "VAE codes of the training set (once)"
FLOP_PARTICLES = 4


def wall_seconds(elapsed_s: list[float]) -> float:
    """Total training wall time from the logged ``elapsed_s`` column; it restarts at 0 on each ``--resume``."""
    total, previous = 0.0, 0.0
    for value in elapsed_s:
        if value < previous:
            total += previous
        previous = value
    return total + previous


def last_metrics_row(run_folder: Path, kind: str) -> dict:
    """The last row of ``run_folder/kind/metrics.csv`` with the total wall time, and the run's settings."""
    path = Path(run_folder) / kind / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no training log (pass the run folder with --latent-run / --pixel-run)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    settings = json.loads((Path(run_folder) / kind / "run.json").read_text())
    wall = wall_seconds([float(r["elapsed_s"]) for r in rows])
    return {**{k: float(v) for k, v in rows[-1].items()}, "wall_s": wall,
            "batch_size": settings["settings"]["loop"]["batch_size"], "command": settings["command_line"]}


def training_rows(latent_run: Path, pixel_run: Path, measured: dict[str, dict], n_train: int) -> list[dict]:
    """Steps, wall time and s/step of each training stage, from the run folders' logs, and the step cost
    measured here (``measured``, by stage: VAE_STAGE, CODE_CACHE, LATENT, PIXEL). The latent denoiser's one-off
    encoding of the ``n_train`` training particles is not in its log: its row is the per-particle cost measured
    here times ``n_train`` (a "step" there is one particle)."""
    stages = [(LATENT, VAE_STAGE, VAE_STAGE, last_metrics_row(latent_run, "vae")),
              (LATENT, "denoiser stage", LATENT, last_metrics_row(latent_run, "ldm")),
              (PIXEL, "denoiser (only stage)", PIXEL, last_metrics_row(pixel_run, "pixel"))]
    rows = [{"model": model, "stage": stage, "steps": int(m["step"]), "batch": m["batch_size"],
             "wall min": m["wall_s"] / 60, "s/step in the run": m["wall_s"] / m["step"], **measured[key],
             "TFLOP (steps x GFLOP/step)": m["step"] * measured[key]["GFLOP/step"] / 1e3,
             "final validation NCC": m.get("ncc", float("nan")), "command": f"`{m['command']}`"}
            for model, stage, key, m in stages]
    cache = measured[CODE_CACHE]
    rows.insert(1, {"model": LATENT, "stage": CODE_CACHE, "steps": n_train, "batch": 256,
                    "wall min": n_train * cache["s/step here"] / 60, "s/step in the run": float("nan"), **cache,
                    "TFLOP (steps x GFLOP/step)": n_train * cache["GFLOP/step"] / 1e3,
                    "final validation NCC": float("nan"),
                    "command": "(inside `train ldm`; per-particle cost measured here)"})
    return rows


def count_flops_per_particle(pipe: LatentPhasePipeline, condition: torch.Tensor, physics, counts: torch.Tensor,
                             steps: int) -> float:
    """Network FLOPs per particle of one pipeline call (codec + ``steps`` denoiser evaluations)."""
    with FlopCounterMode(display=False) as counter:
        pipe(condition[:FLOP_PARTICLES], physics[:FLOP_PARTICLES], generator=torch.Generator().manual_seed(0),
             counts=counts[:FLOP_PARTICLES], n_steps=steps)
    return counter.get_total_flops() / FLOP_PARTICLES


def network_seconds(pipe: LatentPhasePipeline, condition: torch.Tensor, physics, counts: torch.Tensor, steps: int,
                    repeats: int) -> float:
    """Best wall time of ``repeats`` pipeline calls on the whole batch (after a warm-up call)."""
    pipe(condition[:2], physics[:2], generator=torch.Generator().manual_seed(0), counts=counts[:2], n_steps=steps)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        pipe(condition, physics, generator=torch.Generator().manual_seed(0), counts=counts, n_steps=steps)
        best = min(best, time.perf_counter() - t)
    return best


def reference_pipeline(latent_method, pixel_method, seed: int) -> LatentPhasePipeline:
    """The latent denoiser's architecture on the 1-channel 64 px phase (randomly initialised: for cost only)."""
    config = latent_method.pipeline.denoiser.config
    unet = UNet(replace(config, in_channels=2, out_channels=1))
    initialise(unet, torch.Generator().manual_seed(seed))
    codec = PixelCodec(PixelCodecConfig(pixel_method.pipeline.codec.config.phase_scale_rad))
    return LatentPhasePipeline(codec, unet, latent_method.pipeline.diffusion)


def training_step_cost(task, data: TensorData, batch_size: int, repeats: int) -> tuple[float, float]:
    """GFLOP and best wall seconds of one training step (frozen codec, denoiser forward/backward, AdamW)."""
    model = task.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    generator = torch.Generator().manual_seed(0)

    def step():
        prepared = task.prepare(data.sample(batch_size, generator), generator)
        optimizer.zero_grad(set_to_none=True)
        task.loss(model, prepared, generator).backward()
        optimizer.step()

    step()  # warm-up
    with FlopCounterMode(display=False) as counter:
        step()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return counter.get_total_flops() / 1e9, best


def training_cost_rows(latent, pixel, data: TensorData, repeats: int) -> dict[str, dict]:
    """Training-step cost of every stage measured here, at the preset's batch sizes, keyed by stage name."""
    preset = get_preset("default")
    latent_task = LDMTask(copy.deepcopy(latent.pipeline.denoiser), latent.pipeline.codec, latent.pipeline.diffusion,
                          Conditioner(latent.condition_method), latent.grid,
                          conditioning=latent.pipeline.conditioning)
    vae = copy.deepcopy(latent.pipeline.codec).requires_grad_(True)  # LDMTask froze the shared codec's parameters
    tasks = {VAE_STAGE: (VAETask(vae, preset.kl_weight, latent.grid, preset.vae_spectral_weight),
                         preset.vae_loop.batch_size),
             LATENT: (latent_task, preset.ldm_loop.batch_size),
             PIXEL: (PixelDiffusionTask(copy.deepcopy(pixel.pipeline.denoiser), pixel.pipeline.codec,
                                        pixel.pipeline.diffusion, Conditioner(pixel.condition_method), pixel.grid),
                     preset.pixel_loop.batch_size)}
    rows = {}
    # the latent denoiser trains on VAE codes encoded once before the first step (LDMTask.cache_codes)
    latent_task.cache_codes(data, progress=False)  # warm-up
    with FlopCounterMode(display=False) as counter:
        t = time.perf_counter()
        data_for = {LATENT: latent_task.cache_codes(data, progress=False)}
        seconds = time.perf_counter() - t
    rows[CODE_CACHE] = {"GFLOP/step": counter.get_total_flops() / 1e9 / len(data), "s/step here": seconds / len(data)}
    for name, (task, batch_size) in tasks.items():
        gflop, seconds = training_step_cost(task, data_for.get(name, data), batch_size, repeats)
        rows[name] = {"GFLOP/step": gflop, "s/step here": seconds}
    return rows


def retrieve_both(latent, pixel, batch, seed: int) -> tuple[dict, dict]:
    """Phases and wall seconds of ldm, pixel-diffusion (end to end, after a warm-up) and their conditioning
    method alone, on the same particles with the same generator seed."""
    results, seconds = {}, {}
    for name, method in ((LATENT, latent), (PIXEL, pixel)):
        method.reconstruct(batch.counts[:2], batch.physics[:2], generator=torch.Generator().manual_seed(0))
        t = time.perf_counter()
        results[name] = method.reconstruct(batch.counts, batch.physics,
                                           generator=torch.Generator().manual_seed(seed + 1)).phase
        seconds[name] = time.perf_counter() - t
    t = time.perf_counter()
    results[latent.condition_method] = latent._condition.reconstruct(
        batch.counts, batch.physics, generator=torch.Generator().manual_seed(seed + 1)).phase
    seconds[latent.condition_method] = time.perf_counter() - t
    return results, seconds


def quality_by_method(truth: torch.Tensor, results: dict, pixel_size_angstrom: float) -> dict[str, dict]:
    return {name: {"NCC": float(normalised_cross_correlation(truth, phase).mean()),
                   **mean_frc_resolutions(truth, phase, pixel_size_angstrom)} for name, phase in results.items()}


def training_structures(data_folder: Path) -> list[str]:
    """The specimens a ``cryophase simulate`` folder was made from (paths relative to the repository root)."""
    path = Path(data_folder) / "simulation.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (pass the training data folder with --train-data)")
    names = json.loads(path.read_text())["settings"]["specimen"]
    return [n if n == "synthetic" else str(REPO / n) for n in names]


def parameters(pipe: LatentPhasePipeline) -> int:
    return sum(p.numel() for p in pipe.denoiser.parameters())


def equal_quality_statement(quality: dict) -> str:
    d_ncc = quality[PIXEL]["NCC"] - quality[LATENT]["NCC"]
    d_frc = quality[PIXEL]["frc_0.5_A"] - quality[LATENT]["frc_0.5_A"]
    equal = abs(d_ncc) <= NCC_TOLERANCE and abs(d_frc) <= FRC_TOLERANCE_ANGSTROM
    if equal:
        return (f"Equal quality within tolerance (|dNCC| <= {NCC_TOLERANCE}, |dFRC-0.5| <= "
                f"{FRC_TOLERANCE_ANGSTROM} A): pixel - latent NCC {d_ncc:+.3f}, FRC-0.5 {d_frc:+.2f} A, so the cost "
                "ratios compare the two at equal quality.")
    better = "pixel" if (d_ncc > 0 and d_frc <= 0) else "latent" if (d_ncc < 0 and d_frc >= 0) else "neither"
    return (f"NOT equal quality: pixel - latent NCC {d_ncc:+.3f}, FRC-0.5 {d_frc:+.2f} A (tolerance {NCC_TOLERANCE}, "
            f"{FRC_TOLERANCE_ANGSTROM} A); better on both: {better}. The cost ratios compare the two at these "
            "different qualities, not at equal quality.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, n_default=32)
    parser.set_defaults(threads=1)
    parser.add_argument("--pixel-weights", default=None,
                        help="folder with pixel_denoiser.* (from `cryophase train pixel`; default: the shipped peer)")
    parser.add_argument("--latent-run", default=str(RUNS / "default"), help="run folder of the latent model")
    parser.add_argument("--pixel-run", default=str(RUNS / "pixel"), help="run folder of the pixel model")
    parser.add_argument("--specimen", action="append", default=None,
                        help="held-out structure (repeat; default: the four held-out PDB/mmCIF files)")
    parser.add_argument("--dose", type=float, default=30.0, help="e/A^2")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps of both models")
    parser.add_argument("--repeats", type=int, default=3, help="timed network calls per model (best is kept)")
    parser.add_argument("--train-data", default=str(RUNS / "train_data"),
                        help="the training data folder: also report quality on new particles of its structures "
                             "(pass '' to skip)")
    parser.add_argument("--skip-reference", action="store_true", help="skip the untrained latent-UNet-at-64-px row")
    args = parser.parse_args()
    start(args, "Cost of diffusion in latent vs pixel space")

    latent = get_method("ldm", weights=args.weights, n_steps=args.steps, samples=1)
    pixel = get_method("pixel-diffusion", weights=args.pixel_weights, n_steps=args.steps, samples=1)
    if latent.condition_method != pixel.condition_method or latent.grid != pixel.grid:
        raise SystemExit(f"the two models differ in conditioning ({latent.condition_method}, "
                         f"{pixel.condition_method}) or grid ({latent.grid}, {pixel.grid}): not comparable")
    specimens = load_specimens(args.specimen or [str(p) for p in HELDOUT_STRUCTURES], torch.Generator().manual_seed(0))
    config = evaluation_config(dose_e_per_a2=args.dose)
    batch = simulate_batch(specimens, config, args.n, torch.Generator().manual_seed(args.seed + int(args.dose)))
    print(f"latent weights: {args.weights or 'shipped'}; pixel weights: {args.pixel_weights}; {args.n} particles "
          f"of {len(specimens)} held-out structures at {args.dose:g} e/A^2; {args.steps} DDIM steps, K = 1; "
          f"conditioning `{latent.condition_method}`; {args.threads} thread(s)\n")

    results, seconds = retrieve_both(latent, pixel, batch, args.seed)
    condition = results[latent.condition_method]

    # The network alone, on the precomputed condition on the model grid.
    grid = latent.grid
    condition_m = to_model_grid(condition.float(), config.pixel_size_angstrom, grid.pixel_size_angstrom,
                                grid.image_size)
    counts_m, physics_m = counts_on_model_grid(batch.counts, batch.physics, grid)
    pipes = {LATENT: latent.pipeline, PIXEL: pixel.pipeline}
    if not args.skip_reference:
        pipes[REFERENCE] = reference_pipeline(latent, pixel, args.seed)
    cost, nan = {}, float("nan")
    with torch.no_grad():
        for name, pipe in pipes.items():
            net_s = network_seconds(pipe, condition_m, physics_m, counts_m, args.steps, args.repeats)
            cost[name] = {"denoiser params M": parameters(pipe) / 1e6,
                          "GFLOP/particle": count_flops_per_particle(pipe, condition_m, physics_m, counts_m,
                                                                     args.steps) / 1e9,
                          "network particles/s": args.n / net_s,
                          "end-to-end particles/s": args.n / seconds[name] if name in seconds else nan}

    quality = quality_by_method(batch.phase, results, config.pixel_size_angstrom)
    cost[latent.condition_method] = {"denoiser params M": nan, "GFLOP/particle": nan, "network particles/s": nan,
                                     "end-to-end particles/s": args.n / seconds[latent.condition_method]}
    rows = []
    for name, c in cost.items():
        q = quality.get(name, {"NCC": nan, "frc_0.5_A": nan, "frc_0.143_A": nan})
        rows.append({"method": name if name in pipes else f"{name} (the condition alone)", **c,
                     "NCC": q["NCC"], "FRC-0.5 A": q["frc_0.5_A"], "FRC-0.143 A": q["frc_0.143_A"]})
    print(f"## Cost and quality at {args.steps} steps ({args.dose:g} e/A^2, held-out structures)\n")
    print(markdown(rows))

    grid_phase = to_model_grid(batch.phase.float(), config.pixel_size_angstrom, grid.pixel_size_angstrom,
                               grid.image_size)
    held_out = TensorData(grid_phase, counts_m, physics_m, condition_m, latent.condition_method)
    measured = training_cost_rows(latent, pixel, held_out, args.repeats)
    print("\n## Training (same data, 1 core each; steps and wall time from the run folders' logs, step cost "
          "measured here on held-out particles)\n")
    n_train = len(read_particles_star(Path(args.train_data) / "particles.star").particles)
    training = training_rows(Path(args.latent_run), Path(args.pixel_run), measured, n_train)
    print(markdown(training))
    total = {model: {k: sum(r[k] for r in training if r["model"] == model)
                     for k in ("wall min", "TFLOP (steps x GFLOP/step)")} for model in (LATENT, PIXEL)}

    ratios = {"network GFLOP/particle": cost[PIXEL]["GFLOP/particle"] / cost[LATENT]["GFLOP/particle"],
              "network particles/s": cost[PIXEL]["network particles/s"] / cost[LATENT]["network particles/s"],
              "end-to-end particles/s": cost[PIXEL]["end-to-end particles/s"] / cost[LATENT]["end-to-end particles/s"],
              "training GFLOP/step (denoiser stage)": measured[PIXEL]["GFLOP/step"] / measured[LATENT]["GFLOP/step"],
              "training TFLOP (all stages, as run)": (total[PIXEL]["TFLOP (steps x GFLOP/step)"]
                                                      / total[LATENT]["TFLOP (steps x GFLOP/step)"]),
              "training wall time (all stages, as run)": total[PIXEL]["wall min"] / total[LATENT]["wall min"],
              "NCC": quality[PIXEL]["NCC"] / quality[LATENT]["NCC"]}
    if REFERENCE in cost:
        ratios["reference UNet GFLOP/particle"] = cost[REFERENCE]["GFLOP/particle"] / cost[LATENT]["GFLOP/particle"]
    if args.train_data:
        seen = load_specimens(training_structures(Path(args.train_data)), torch.Generator().manual_seed(0))
        fresh = simulate_batch(seen, config, args.n, torch.Generator().manual_seed(args.seed + int(args.dose) + 1))
        fresh_results, _ = retrieve_both(latent, pixel, fresh, args.seed)
        print(f"\n## Quality on {args.n} new particles of the training structures ({args.train_data}: seen in "
              "training, new orientations and noise), same settings\n")
        fresh_quality = quality_by_method(fresh.phase, fresh_results, config.pixel_size_angstrom)
        print(markdown([{"method": k, "NCC": q["NCC"], "FRC-0.5 A": q["frc_0.5_A"], "FRC-0.143 A": q["frc_0.143_A"]}
                        for k, q in fresh_quality.items()]))

    print("\n## Ratios pixel / latent (held-out particles)\n")
    print(markdown([{"quantity": k, "pixel / latent": v} for k, v in ratios.items()]))
    print("\n" + equal_quality_statement(quality))


if __name__ == "__main__":
    main()
