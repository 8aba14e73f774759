"""Classical phase retrieval: quality at three doses and speed at 64x64, printed as markdown tables.

Quality: particles simulated from the structures in ``../shared/data/structures`` (``simulate_batch`` with its
default realism: ice, k3 detector, 3.5 A/px, 0.5-3 um defocus) at fixed doses; mean NCC and phase RMSE
(radians, mean removed) of each image against the truth, the 0.5 and 0.143 crossings of the image-averaged FRC
(A; a crossing at the first ring, ~box * pixel, means the curve never reaches the threshold), and the NCC after
the 10 A low-pass of ``cryophase.evaluation`` (as the paper compares).
Speed: particles per second for a batch at 64x64 in float32 (targets: ``gs``/``raf`` with 50 iterations >= 300/s,
``ml`` >= 30/s on 2 CPU cores), as wall time and per CPU-second of this process (the load-independent cost: on a
machine shared with other jobs the wall rate says more about the neighbours; with ``--threads 1`` the CPU rate is
the rate of one idle core).

    python benchmarks/retrieval.py [--threads 2] [--device cpu] [--particles 64] [--doses 15 30 60]
                                   [--speed-batch 256] [--methods gs raf ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from cryophase.evaluation.metrics import evaluate_phases
from cryophase.retrieval import available_methods, get_method
from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.specimens.registry import load_specimens

CLASSICAL = ["wiener", "phase-flip", "gs", "raf", "hio", "raar", "ml"]
STRUCTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "structures"


def simulate(specimens, dose_e_per_a2: float, n: int, seed: int, device: torch.device):
    config = SimulationConfig(dose_range_e_per_a2=(dose_e_per_a2, dose_e_per_a2))
    generator = torch.Generator(device=device).manual_seed(seed)
    return simulate_batch(specimens, config, n, generator, device=device), config.pixel_size_angstrom


def quality_rows(methods, specimens, doses, n, device) -> list[str]:
    rows = []
    for dose in doses:
        batch, pixel = simulate(specimens, dose, n, seed=int(dose), device=device)
        for name in methods:
            start = time.perf_counter()
            result = get_method(name).reconstruct(batch.counts, batch.physics,
                                                  generator=torch.Generator(device=device).manual_seed(0))
            seconds = time.perf_counter() - start
            ev = evaluate_phases(batch.phase, result.phase, pixel)
            rows.append(
                f"| {name} | {dose:g} | {ev.per_image['ncc'].mean():.3f} | {ev.per_image_lowpass['ncc'].mean():.3f} "
                f"| {ev.mean_frc_resolutions['frc_0.5_angstrom']:.1f} "
                f"| {ev.mean_frc_resolutions['frc_0.143_angstrom']:.1f} | {ev.per_image['rmse_rad'].mean():.4f} "
                f"| {n / seconds:.0f} |")
    return rows


def speed_rows(methods, specimens, batch_size: int, repeats: int, device) -> list[str]:
    batch, _ = simulate(specimens, 30.0, batch_size, seed=1, device=device)
    rows = []
    for name in methods:
        method = get_method(name)
        method.reconstruct(batch.counts[:2], batch.physics[:2])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            result = method.reconstruct(batch.counts, batch.physics)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / repeats
        cpu_seconds = (time.process_time() - start_cpu) / repeats
        iterations = result.history["amplitude_residual"].shape[0] if result.history else 0
        rows.append(f"| {name} | {iterations} | {batch_size} | {batch_size / seconds:.0f} "
                    f"| {batch_size / cpu_seconds:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--particles", type=int, default=64, help="particles per dose for the quality table")
    parser.add_argument("--doses", type=float, nargs="+", default=[15.0, 30.0, 60.0], help="e/A^2")
    parser.add_argument("--speed-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=CLASSICAL, choices=available_methods())
    parser.add_argument("--structures", type=Path, default=STRUCTURES)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if not args.structures.is_dir():
        raise SystemExit(f"{args.structures}: structures folder not found (pass --structures)")
    methods = args.methods
    specimens = load_specimens([str(args.structures)], torch.Generator().manual_seed(0))
    print(f"{len(specimens)} specimens from {args.structures}, device {device}, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    if not args.skip_quality:
        print(f"Quality, {args.particles} particles per dose (64x64, 3.5 A/px, in ice, k3):\n")
        print("| method | dose (e/A^2) | NCC | NCC (10 A low-pass) | FRC-0.5 (A) | FRC-0.143 (A) | RMSE (rad) "
              "| particles/s |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(quality_rows(methods, specimens, args.doses, args.particles, device)), flush=True)
    if not args.skip_speed:
        print(f"\nSpeed, float32, 64x64, load average {os.getloadavg()[0]:.1f}:\n")
        print("| method | iterations | batch | particles/s (wall) | particles per CPU-second |")
        print("|---|---|---|---|---|")
        print("\n".join(speed_rows(methods, specimens, args.speed_batch, args.repeats, device)))


if __name__ == "__main__":
    main()
