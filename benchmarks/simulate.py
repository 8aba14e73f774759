"""Simulation speed: particles per second at 64x64 and the wall time of 10,000 training pairs.

Targets: >= 500 particles/s for synthetic specimens, >= 100/s for a 50,000-atom model, 10,000 training pairs in
< 2 min on 2 CPU cores.

    python benchmarks/simulate.py [--threads 2] [--device cpu] [--batch 256] [--pairs 10000]
"""

from __future__ import annotations

import argparse
import time

import torch

from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.specimens.base import Projection
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein


class StoredProjection:
    """One stored projection returned for every orientation: times the simulator without the projector."""

    name = "stored-projection"

    def __init__(self, projection: Projection):
        self.projection = projection

    def project(self, rotations, shifts_angstrom, image_shape, pixel_size_angstrom, *, b_factor_a2=0.0):
        b, like = rotations.shape[0], dict(device=rotations.device, dtype=rotations.dtype)
        return Projection(self.projection.potential_volt_angstrom.expand(b, -1, -1).to(**like),
                          self.projection.excluded_thickness_angstrom.expand(b, -1, -1).to(**like))


def rate(specimens, config, batch: int, repeats: int, device, generator) -> float:
    simulate_batch(specimens, config, batch, generator, device=device)  # warm-up: projection plans, caches
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        simulate_batch(specimens, config, batch, generator, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--n-synthetic", type=int, default=8, help="synthetic proteins in the pool")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(0)
    cpu_generator = torch.Generator().manual_seed(0)
    config = SimulationConfig()

    start = time.perf_counter()
    synthetic = [random_synthetic_protein(SyntheticProteinConfig(), cpu_generator) for _ in range(args.n_synthetic)]
    build_s = time.perf_counter() - start
    big = random_synthetic_protein(SyntheticProteinConfig(oligomer_probability=0.0), cpu_generator, mass_kda=700.0)

    rows = []
    atoms = sum(s.num_atoms for s in synthetic) / len(synthetic)
    rows.append((f"synthetic pool of {len(synthetic)} (mean {atoms:,.0f} atoms)",
                 rate(synthetic, config, args.batch, args.repeats, device, generator), 500))
    rows.append((f"one model of {big.num_atoms:,} atoms", rate([big], config, args.batch, args.repeats, device,
                                                                generator), 100))
    box = (config.box_size, config.box_size)
    stored = StoredProjection(synthetic[0].project(torch.eye(3)[None], torch.zeros(1, 2), box,
                                                   config.pixel_size_angstrom))
    rows.append(("stored projection (simulator without the projector)",
                 rate([stored], config, args.batch, args.repeats, device, generator), None))
    quiet = SimulationConfig(ice_background=False, neighbour_probability=0.0, contamination_probability=0.0,
                             radiation_damage=False, detector="ideal")
    rows.append(("synthetic, ice/neighbours/damage/detector off",
                 rate(synthetic, quiet, args.batch, args.repeats, device, generator), None))

    start = time.perf_counter()
    done = 0
    while done < args.pairs:
        size = min(args.batch, args.pairs - done)
        simulate_batch(synthetic, config, size, generator, device=device)
        done += size
    if device.type == "cuda":
        torch.cuda.synchronize()
    pairs_s = time.perf_counter() - start

    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, box {config.box_size} "
          f"(canvas {config.canvas_size}) at {config.pixel_size_angstrom} A/px; building {len(synthetic)} "
          f"synthetic proteins took {build_s:.1f} s\n")
    print("| specimens | particles/s | target |")
    print("| --- | ---: | ---: |")
    for name, value, target in rows:
        print(f"| {name} | {value:,.0f} | {'>= ' + str(target) if target else '-'} |")
    print(f"\n10,000 training pairs ({args.pairs:,} simulated): {pairs_s:.1f} s (target < 120 s on 2 cores)")


if __name__ == "__main__":
    main()
