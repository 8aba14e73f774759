"""Does ``ldm`` earn its place? Quality, calibration, dose efficiency and speed of the latent diffusion model.

Particles of held-out structures (never used in training) are simulated at 15, 30 and 60 e/A^2 in the training
distribution (simulator defaults at 64 px, 3.5 A/px, contrast factor 0.4-1.0) and retrieved by ``ldm`` (the
posterior mean of K samples and a single sample), the ``regression`` peer (same data and conditioning, no
sampling) and every classical method. Reported per dose:

* NCC to the truth (mean over particles) and the FRC-0.5 / FRC-0.143 resolution (A) of the mean FRC curve;
* the radially averaged power-spectrum ratio prediction / truth per ring out to 1/8 A^-1 (min and max over the
  rings; 1 = the right amount of detail, < 1 too smooth, > 1 invented detail);
* calibration of ``ldm``: coverage of mean +- 1.645 sd over the pixels inside the particle (|truth| > 5% of its
  maximum, dilated by 2 px; 0.90 when calibrated) and the Pearson correlation over particles of sd and RMSE;
* a data-free baseline, the same centred Gaussian (sd 12 A) for every particle: NCC and FRC reward a centred
  blob, so a method's margin over this row is what it took from the data;
* dose efficiency: ``ldm`` at 15 e/A^2 against every classical method at 60 e/A^2;
* with ``--pixel-weights``: the pixel-space peer (``pixel-diffusion``, mean of K samples) in the quality and
  power-ratio tables (its cost is in ``benchmarks/cost.py``);
* the verdict on the five criteria of issues 4/5 (criterion 5 comes from ``benchmarks/ldm_averaging.py``;
  ``--averaging`` runs it here).

Speed: ``ldm`` with ``--steps`` steps on batches of 64: particles/s, FLOPs per particle (torch's counter) and the
time share of each stage (conditioning method, encode, sampling loop, decode).

K defaults to 32: the mean of K samples estimates the posterior mean with an error variance of 1/K of the
posterior's, and with the shipped weights of session 3 its NCC rose by 0.016-0.021 from K = 8 to K = 32 at every
dose (docs/model-card.md). ``uncertainty`` is the predictive sd (sample sd times sqrt(1 + 1/K)).

    python benchmarks/ldm.py [--weights runs/default/weights] [--n 32] [--samples 32] [--steps 20] [--threads 2]
        [--out docs/figures] [--skip-ideal] [--skip-speed] [--averaging] [--pixel-weights ../runs/pixel/weights]
        [--contrast-factor 0.3,0.6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import (CLASSICAL_METHODS, HELDOUT_STRUCTURES, TRAINING_CONTRAST_FACTOR_RANGE, add_common_arguments,
                     calibration, centred_blob, evaluation_config, markdown, mean_frc_resolutions, particle_support,
                     power_ratio_per_band, start)
from cryophase.cli.cmd_simulate import parse_range
from cryophase.errors import CryophaseError
from cryophase.evaluation.figures import Panel, curves_plot, particle_grid
from cryophase.evaluation.metrics import normalised_cross_correlation
from cryophase.models.conditioning import condition_channels
from cryophase.models.unet import physics_features
from cryophase.retrieval.base import RetrievalResult, get_method
from cryophase.retrieval.model_grid import counts_on_model_grid
from cryophase.simulation import simulate_batch
from cryophase.specimens.registry import load_specimens

DOSES_E_PER_A2 = (15.0, 30.0, 60.0)
POWER_LIMIT_PER_ANGSTROM = 1.0 / 8.0
POWER_RATIO_BOUNDS = (0.8, 1.25)
COVERAGE_BOUNDS = (0.85, 0.95)
NCC_TOLERANCE = 0.005
FRC_TOLERANCE_ANGSTROM = 0.5
LDM_MEAN, LDM_SAMPLE, PEER = "ldm mean", "ldm sample", "regression"
PIXEL_MEAN = "pixel-diffusion mean"
BLOB = "centred blob (no data)"
BLOB_SD_ANGSTROM = 12.0  # about the best fixed width for the small held-out proteins (NCC 0.75 at 10-15 A)


def build_methods(args) -> dict:
    """Reconstructors by row name: ldm mean of K samples, one ldm sample, the regression peer, the pixel-space peer
    (mean of K samples, only with ``--pixel-weights``), the classical ones."""
    pixel = ({PIXEL_MEAN: get_method("pixel-diffusion", weights=args.pixel_weights, n_steps=args.steps,
                                     samples=args.samples)} if args.pixel_weights is not None else {})
    return {LDM_MEAN: get_method("ldm", weights=args.weights, n_steps=args.steps, samples=args.samples),
            LDM_SAMPLE: get_method("ldm", weights=args.weights, n_steps=args.steps, samples=1),
            PEER: get_method("regression", weights=args.weights), **pixel,
            **{m: get_method(m) for m in args.classical}}


def run_dose(methods: dict, specimens, dose: float, args, *, ideal: bool) -> dict:
    """Simulate one dose and run every method; returns truth, results and timings."""
    config = evaluation_config(dose_e_per_a2=dose, ideal=ideal, contrast_factor_range=args.contrast_factor)
    batch = simulate_batch(specimens, config, args.n, torch.Generator().manual_seed(args.seed + int(dose)))
    results, seconds = {}, {}
    for name, method in methods.items():
        t = time.perf_counter()
        results[name] = method.reconstruct(batch.counts, batch.physics,
                                           generator=torch.Generator().manual_seed(args.seed + 1))
        seconds[name] = time.perf_counter() - t
    size = config.box_size
    results[BLOB] = RetrievalResult(centred_blob(args.n, size, config.pixel_size_angstrom, BLOB_SD_ANGSTROM), {})
    seconds[BLOB] = float("nan")
    return {"dose": dose, "config": config, "batch": batch, "results": results, "seconds": seconds}


def quality_rows(run: dict, n: int) -> list[dict]:
    truth, pixel = run["batch"].phase, run["config"].pixel_size_angstrom
    rows = []
    for name, result in run["results"].items():
        rows.append({"dose e/A^2": run["dose"], "method": name,
                     "NCC": float(normalised_cross_correlation(truth, result.phase).mean()),
                     **mean_frc_resolutions(truth, result.phase, pixel),
                     "particles/s": n / run["seconds"][name]})
    return rows


def power_rows(run: dict, names: list[str]) -> tuple[list[dict], dict]:
    truth, pixel = run["batch"].phase, run["config"].pixel_size_angstrom
    rows, curves = [], {}
    for name in names:
        f, ratio = power_ratio_per_band(truth, run["results"][name].phase, pixel, POWER_LIMIT_PER_ANGSTROM)
        curves[name] = (f, ratio)
        lo, hi = POWER_RATIO_BOUNDS
        rows.append({"dose e/A^2": run["dose"], "method": name, "min ratio": float(ratio.min()),
                     "max ratio": float(ratio.max()), "mean ratio": float(ratio.mean()),
                     f"all rings in {lo}-{hi}": bool(((ratio >= lo) & (ratio <= hi)).all())})
    return rows, curves


def calibration_row(run: dict) -> dict:
    truth = run["batch"].phase
    result = run["results"][LDM_MEAN]
    if result.uncertainty is None:
        raise ValueError("calibration needs --samples > 1")
    cal = calibration(truth, result.phase, result.uncertainty, particle_support(truth))
    lo, hi = COVERAGE_BOUNDS
    return {"dose e/A^2": run["dose"], "coverage (90% nominal)": cal["coverage"],
            "sd-RMSE Pearson": cal["sd_rmse_pearson"],
            "ok": bool(lo <= cal["coverage"] <= hi and cal["sd_rmse_pearson"] > 0)}


def dose_efficiency_rows(quality: list[dict], classical: list[str]) -> list[dict]:
    """ldm mean at the lowest dose against each classical method at the highest (better = higher NCC, finer FRC-0.5)."""
    low = {r["method"]: r for r in quality if r["dose e/A^2"] == min(DOSES_E_PER_A2)}[LDM_MEAN]
    rows = []
    for m in classical:
        high = {r["method"]: r for r in quality if r["dose e/A^2"] == max(DOSES_E_PER_A2)}[m]
        rows.append({"classical method": m, "its NCC at 60": high["NCC"], "its FRC-0.5 A at 60": high["frc_0.5_A"],
                     "its FRC-0.143 A at 60": high["frc_0.143_A"], "ldm NCC at 15": low["NCC"],
                     "ldm FRC-0.5 A at 15": low["frc_0.5_A"], "ldm FRC-0.143 A at 15": low["frc_0.143_A"],
                     "ldm@15 better": bool(low["NCC"] > high["NCC"] and low["frc_0.5_A"] < high["frc_0.5_A"])})
    return rows


def verdict_rows(quality, power, calib, efficiency, averaging: dict | None) -> list[dict]:
    by = {(r["dose e/A^2"], r["method"]): r for r in quality}
    c1 = [by[(d, LDM_MEAN)]["NCC"] >= by[(d, PEER)]["NCC"] - NCC_TOLERANCE
          and by[(d, LDM_MEAN)]["frc_0.5_A"] <= by[(d, PEER)]["frc_0.5_A"] + FRC_TOLERANCE_ANGSTROM
          for d in DOSES_E_PER_A2]
    ok_key = [k for k in power[0] if k.startswith("all rings")][0]
    single = [r for r in power if r["method"] == LDM_SAMPLE]
    peer = [r for r in power if r["method"] == PEER]
    detail = lambda rows: ", ".join(f"{r['min ratio']:.2f}-{r['max ratio']:.2f}" for r in rows)
    rows = [
        {"criterion": "1 ldm mean within 0.005 NCC and 0.5 A FRC-0.5 of the peer (or better), every dose",
         "measured": ", ".join(f"{d:g}: dNCC {by[(d, LDM_MEAN)]['NCC'] - by[(d, PEER)]['NCC']:+.3f}, "
                               f"dFRC {by[(d, LDM_MEAN)]['frc_0.5_A'] - by[(d, PEER)]['frc_0.5_A']:+.1f} A"
                               for d in DOSES_E_PER_A2),
         "pass": all(c1)},
        {"criterion": "2 single-sample power ratio in 0.8-1.25 to 1/8 A^-1, every dose",
         "measured": f"ldm sample {detail(single)}; peer {detail(peer)}",
         "pass": all(r[ok_key] for r in single)},
        {"criterion": "3 coverage 85-95% inside the particle and sd-RMSE correlation > 0, every dose",
         "measured": ", ".join(f"{r['dose e/A^2']:g}: {100 * r['coverage (90% nominal)']:.0f}% / "
                               f"r={r['sd-RMSE Pearson']:+.2f}" for r in calib),
         "pass": all(r["ok"] for r in calib)},
        {"criterion": "4 ldm at 15 e/A^2 beats every classical method at 60 in NCC and FRC-0.5",
         "measured": f"beats {sum(r['ldm@15 better'] for r in efficiency)} of {len(efficiency)}",
         "pass": all(r["ldm@15 better"] for r in efficiency)},
    ]
    if averaging is None:
        rows.append({"criterion": "5 averaging (benchmarks/ldm_averaging.py)", "measured": "not run here (--averaging)",
                     "pass": "see ldm_averaging.py"})
    else:
        rows.append({"criterion": "5 averaging: beats the peer at 100, Wiener at 4, within 0.01 of Wiener at 100",
                     "measured": averaging["measured"], "pass": averaging["pass"]})
    return rows


def speed(args, specimens) -> tuple[dict, dict]:
    method = get_method("ldm", weights=args.weights, n_steps=args.steps, samples=1)
    pipe, grid = method.pipeline, method.grid
    config = evaluation_config(dose_e_per_a2=30.0)
    batch = simulate_batch(specimens, config, 64, torch.Generator().manual_seed(args.seed))
    g = torch.Generator().manual_seed(0)
    method.reconstruct(batch.counts[:4], batch.physics[:4], generator=g)  # warm-up
    counts, physics = counts_on_model_grid(batch.counts, batch.physics, grid)
    stages = {}
    with torch.no_grad():
        t = time.perf_counter()
        cond = method._condition.reconstruct(counts, physics, generator=g).phase.float()
        stages["condition"] = time.perf_counter() - t
        t = time.perf_counter()
        c = pipe.codec.encode(cond)
        channels = condition_channels(pipe.conditioning, c, cond, counts)
        stages["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        out = pipe(cond, physics, generator=g, counts=counts, n_steps=args.steps)
        total_pipe = time.perf_counter() - t
        t = time.perf_counter()
        pipe.codec.decode(c)
        stages["decode"] = time.perf_counter() - t
        stages["sampling loop"] = max(total_pipe - stages["encode"] - stages["decode"], 0.0)
        features = physics_features(physics[:1])
        with FlopCounterMode(display=False) as counter:
            pipe.codec.encode(cond[:1])
            pipe.codec.decode(c[:1])
        vae_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            pipe.denoiser(torch.cat([c[:1], channels[:1]], 1), torch.tensor([500]), features)
        denoiser_flops = counter.get_total_flops()
    total = sum(stages.values())
    summary = {"steps": args.steps, "particles/s": 64 / total,
               "particles/s without conditioning": 64 / (total - stages["condition"]),
               "GFLOP per particle (network)": (vae_flops + args.steps * denoiser_flops) / 1e9}
    if not torch.isfinite(out.mean).all():
        raise RuntimeError("ldm produced non-finite phases")
    return summary, {f"share {k}": v / total for k, v in stages.items()}


def figures(runs: list[dict], curves_by_dose: dict, out: str) -> list[str]:
    """Power-ratio curves per dose and an example grid at the middle dose."""
    paths = []
    for dose, curves in curves_by_dose.items():
        path = curves_plot({k: (np.asarray(f), np.asarray(r)) for k, (f, r) in curves.items()},
                           f"{out}/ldm_power_ratio_{dose:g}e.png", xlabel="spatial frequency (1/Å)",
                           ylabel="power(prediction) / power(truth)",
                           title=f"Power ratio, held-out particles, {dose:g} e/Å²",
                           hlines={"0.8": 0.8, "1.25": 1.25}, logy=True)
        paths.append(str(path))
    run = runs[len(runs) // 2]
    r = run["results"]
    panels = [Panel("counts", run["batch"].counts, "counts"), Panel("truth", run["batch"].phase, "phase")]
    shown = [name for name in (LDM_MEAN, LDM_SAMPLE, PEER, "ml", "wiener") if name in r]
    panels += [Panel(name, r[name].phase, "phase") for name in shown]
    panels.append(Panel("ldm sd", r[LDM_MEAN].uncertainty, "uncertainty"))
    path = particle_grid(panels, run["config"].pixel_size_angstrom, f"{out}/ldm_examples_{run['dose']:g}e.png",
                         title=f"Held-out particles at {run['dose']:g} e/Å²")
    paths.append(str(path))
    return paths


def _contrast_factor_range(text: str) -> tuple[float, float]:
    try:
        return parse_range(text, "--contrast-factor", TRAINING_CONTRAST_FACTOR_RANGE)
    except CryophaseError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, n_default=32, out_default="docs/figures")
    parser.add_argument("--specimen", action="append", default=None,
                        help="held-out structure (repeat; default: the four held-out PDB/mmCIF files)")
    parser.add_argument("--samples", type=int, default=32, help="K samples for the ldm posterior mean and sd")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--classical", nargs="*", default=list(CLASSICAL_METHODS))
    parser.add_argument("--skip-ideal", action="store_true", help="skip the vacuum / ideal-detector table")
    parser.add_argument("--averaging", action="store_true", help="run benchmarks/ldm_averaging.py for criterion 5")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--contrast-factor", type=_contrast_factor_range, default=TRAINING_CONTRAST_FACTOR_RANGE,
                        metavar="LO,HI",
                        help="imaged-contrast factor range of the simulated particles (default 0.4,1.0; "
                             "0.3,0.6 is the level benchmarks/realism.py matched to the real stacks)")
    parser.add_argument("--pixel-weights", default=None,
                        help="weights of the pixel-space peer (`cryophase train pixel`); adds its rows when given")
    args = parser.parse_args()
    start(args, "ldm: quality, calibration, dose efficiency, speed")
    specimens = load_specimens(args.specimen or [str(p) for p in HELDOUT_STRUCTURES], torch.Generator().manual_seed(0))
    methods = build_methods(args)
    print(f"weights: {args.weights or 'shipped'}; conditioning method: {methods[LDM_MEAN].condition_method}; "
          f"{args.n} particles per dose of {len(specimens)} held-out structures; ldm {args.steps} steps, "
          f"K = {args.samples}; {args.threads} threads\n")
    runs = [run_dose(methods, specimens, d, args, ideal=False) for d in DOSES_E_PER_A2]
    quality = [row for run in runs for row in quality_rows(run, args.n)]
    power, curves_by_dose = [], {}
    for run in runs:
        rows, curves = power_rows(run, [LDM_SAMPLE, LDM_MEAN, PEER, *([PIXEL_MEAN] if PIXEL_MEAN in methods else [])])
        power += rows
        curves_by_dose[run["dose"]] = curves
    calib = [calibration_row(run) for run in runs]
    efficiency = dose_efficiency_rows(quality, args.classical)
    lo, hi = args.contrast_factor
    print(f"## Quality (ice, k3 detector, contrast factor {lo:g}-{hi:g}; FRC of the mean curve)\n")
    print(markdown(quality))
    print("\n## Power-spectrum ratio prediction / truth per ring, 0 < k <= 1/8 A^-1\n")
    print(markdown(power))
    print("\n## Calibration of the ldm posterior (inside the particle)\n")
    print(markdown(calib))
    print("\n## Dose efficiency: ldm mean at 15 e/A^2 against classical methods at 60 e/A^2\n")
    print(markdown(efficiency))
    if not args.skip_ideal:
        ideal_methods = {k: methods[k] for k in (LDM_MEAN, LDM_SAMPLE, PEER, PIXEL_MEAN, "ml", "wiener")
                         if k in methods}
        ideal_runs = [run_dose(ideal_methods, specimens, d, args, ideal=True) for d in DOSES_E_PER_A2]
        print("\n## Quality, vacuum / ideal detector / no damage, neighbours or contamination\n")
        print(markdown([row for run in ideal_runs for row in quality_rows(run, args.n)]))
    averaging = None
    if args.averaging:
        from ldm_averaging import averaging_benchmark
        averaging = averaging_benchmark(args.weights, steps=args.steps, seed=args.seed, out=args.out)
    print("\n## Verdict (issues 4 and 5)\n")
    print(markdown(verdict_rows(quality, power, calib, efficiency, averaging)))
    paths = figures(runs, curves_by_dose, args.out)
    print("\nfigures: " + ", ".join(paths))
    if not args.skip_speed:
        summary, shares = speed(args, specimens)
        print(f"\n## ldm speed ({args.steps} steps, batch 64, {args.threads} threads, K = 1)\n")
        print(markdown([summary]))
        print("\n" + markdown([shares]))


if __name__ == "__main__":
    main()
