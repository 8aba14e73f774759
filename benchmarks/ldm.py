"""Quality, calibration and speed of the latent diffusion model (``ldm``) against its peers.

Quality: particles of held-out specimens are simulated at doses 15, 30 and 60 e/A^2 (the simulator's other
defaults), retrieved by ``ldm`` (K samples), the ``regression`` peer and classical methods, and scored against the
truth: NCC, FRC-0.5 resolution, the power-spectrum ratio prediction/truth averaged over rings out to 1/8 A^-1
(1 = right amount of detail, < 1 = too smooth), and for ``ldm`` the calibration coverage (fraction of pixels whose
truth lies within mean +- 1.645 sd; 0.90 for a calibrated posterior).

Speed: ``ldm`` with ``--steps`` steps on 64-particle batches: particles/s, the share of each stage (conditioning
method, encode, sampling loop, decode) and FLOPs per particle (torch's FLOP counter).

    python benchmarks/ldm.py --weights runs/a/weights --specimen heldout1.pdb --specimen heldout2.cif \
        [--n 64] [--samples 8] [--steps 20] [--classical wiener raf] [--threads 2]

Held-out specimens must not have been used in training; ``synthetic`` with ``--specimen-seed`` different from
the training seed gives different random pseudo-proteins (a weaker test).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from cryophase.evaluation.frc import fourier_ring_correlation, frc_resolutions_angstrom, ring_index
from cryophase.evaluation.metrics import normalised_cross_correlation, remove_mean
from cryophase.models.grid import to_model_grid
from cryophase.models.unet import physics_features
from cryophase.retrieval.base import get_method
from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.specimens.registry import load_specimens

DOSES_E_PER_A2 = (15.0, 30.0, 60.0)
POWER_LIMIT_PER_ANGSTROM = 1.0 / 8.0


def power_ratio(truth: torch.Tensor, pred: torch.Tensor, pixel_size_angstrom: float) -> float:
    """Mean over rings (0 < k <= 1/8 A^-1) of radially averaged power(pred) / power(truth), images pooled."""
    index, n_rings = ring_index(tuple(truth.shape[-2:]), device=truth.device)
    def ring_power(x):
        p = torch.fft.fft2(remove_mean(x)).abs().pow(2).sum(0).reshape(-1)
        return torch.zeros(n_rings + 1, dtype=p.dtype).index_add_(0, index.reshape(-1), p)[:n_rings]
    rings = torch.arange(n_rings, dtype=torch.float32) / (truth.shape[-1] * pixel_size_angstrom)
    keep = (rings > 0) & (rings <= POWER_LIMIT_PER_ANGSTROM)
    ratio = ring_power(pred)[keep] / ring_power(truth)[keep].clamp_min(1e-20)
    return float(ratio.mean())


def coverage(truth: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor) -> float:
    """Fraction of pixels with |truth - mean| <= 1.645 sd after removing each image's mean offset."""
    return float(((remove_mean(truth) - remove_mean(mean)).abs() <= 1.645 * sd).float().mean())


def quality(args, specimens) -> list[dict]:
    rows = []
    methods = {"ldm": get_method("ldm", weights=args.weights, n_steps=args.steps, samples=args.samples),
               "regression": get_method("regression", weights=args.weights),
               **{m: get_method(m) for m in args.classical}}
    for dose in DOSES_E_PER_A2:
        config = replace(SimulationConfig(), dose_range_e_per_a2=(dose, dose))
        batch = simulate_batch(specimens, config, args.n, torch.Generator().manual_seed(args.seed + int(dose)))
        for name, method in methods.items():
            t = time.perf_counter()
            result = method.reconstruct(batch.counts, batch.physics, generator=torch.Generator().manual_seed(1))
            seconds = time.perf_counter() - t
            frc = frc_resolutions_angstrom(fourier_ring_correlation(batch.phase, result.phase),
                                           config.pixel_size_angstrom)
            rows.append({
                "dose": dose, "method": name,
                "ncc": float(normalised_cross_correlation(batch.phase, result.phase).mean()),
                "frc_0.5_A": float(frc["frc_0.5_angstrom"].median()),
                "power_ratio": power_ratio(batch.phase, result.phase, config.pixel_size_angstrom),
                "coverage_90": (coverage(batch.phase, result.phase, result.uncertainty)
                                if result.uncertainty is not None else float("nan")),
                "particles_per_s": args.n / seconds,
            })
    return rows


def speed(args, specimens) -> tuple[dict, dict]:
    method = get_method("ldm", weights=args.weights, n_steps=args.steps, samples=1)
    pipe, grid = method.pipeline, method.grid
    config = replace(SimulationConfig(), box_size=grid.image_size, pixel_size_angstrom=grid.pixel_size_angstrom)
    batch = simulate_batch(specimens, config, 64, torch.Generator().manual_seed(args.seed))
    g = torch.Generator().manual_seed(0)
    method.reconstruct(batch.counts[:4], batch.physics[:4], generator=g)  # warm-up
    stages = {}
    with torch.no_grad():
        t = time.perf_counter()
        cond = method._condition.reconstruct(batch.counts, batch.physics, generator=g).phase
        stages["condition"] = time.perf_counter() - t
        cond = to_model_grid(cond, config.pixel_size_angstrom, grid.pixel_size_angstrom, grid.image_size)
        t = time.perf_counter()
        c = pipe.vae.encode(cond)
        stages["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        out = pipe(cond, batch.physics, generator=g, n_steps=args.steps)
        total_pipe = time.perf_counter() - t
        t = time.perf_counter()
        pipe.vae.decode(c)
        stages["decode"] = time.perf_counter() - t
        stages["sampling loop"] = max(total_pipe - stages["encode"] - stages["decode"], 0.0)
        with FlopCounterMode(display=False) as counter:
            pipe.vae.encode(cond[:1])
            pipe.denoiser(torch.cat([c[:1], c[:1]], 1), torch.tensor([500]), physics_features(batch.physics[:1]))
            pipe.vae.decode(c[:1])
        flops_one_step = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            pipe.denoiser(torch.cat([c[:1], c[:1]], 1), torch.tensor([500]), physics_features(batch.physics[:1]))
        denoiser_flops = counter.get_total_flops()
    total = sum(stages.values())
    summary = {"particles_per_s": 64 / total, "particles_per_s_without_condition": 64 / (total - stages["condition"]),
               "gflops_per_particle": (flops_one_step + (args.steps - 1) * denoiser_flops) / 1e9}
    assert torch.isfinite(out.mean).all()
    return summary, {k: v / total for k, v in stages.items()}


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="weights folder (default: the shipped weights)")
    parser.add_argument("--specimen", action="append", default=None, help="held-out specimen (repeat)")
    parser.add_argument("--specimen-seed", type=int, default=12345)
    parser.add_argument("--n", type=int, default=64, help="particles per dose")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--classical", nargs="*", default=["wiener", "raf"])
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specimens = load_specimens(args.specimen or ["synthetic"], torch.Generator().manual_seed(args.specimen_seed))
    summary, shares = speed(args, specimens)
    print(f"## ldm speed ({args.steps} steps, batch 64, {args.threads} threads)\n")
    print(markdown([summary]))
    print("\n" + markdown([{f"share {k}": v for k, v in shares.items()}]))
    if not args.speed_only:
        print(f"\n## quality ({args.n} particles per dose, ldm with {args.samples} samples)\n")
        print(markdown(quality(args, specimens)))


if __name__ == "__main__":
    main()
