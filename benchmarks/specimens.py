"""Specimens: do synthetic proteins look like real ones, and how fast do specimens project?

1. Realism. For every protein (>= 10 kDa, no nucleic acid) in ``../shared/data/structures``, project the real
   structure and synthetic proteins of the same total mass (``random_synthetic_protein(..., mass_kda=...)``, so
   the comparison is mass-matched and needs no normalisation) at random orientations onto 64x64 pixels, at the
   pixel size that fits the particle (2.4 x its radius per box, clipped to 1.5-3.5 A/px). The images are the
   phase relative to vitreous ice at 300 kV, ``sigma_e * (V_z - 4.5 V * t_excluded)``. The script prints the
   ratio synthetic / real of the radially averaged power spectrum in bands from 1/50 to 1/7 A^-1 (target: within
   a factor of 2 everywhere) and the ratio of the mean peak phase (a phase-histogram statistic).
2. Speed, with 2 threads: particles/s at 64x64 for a 50,000-atom model (three copies of PDB 3wip, 16.7k atoms
   each; target >= 100/s), the time to draw a 100 kDa synthetic model, and particles/s for a pool of default
   synthetic models (target >= 500/s). Wall-clock rates and rates per CPU-second of this process are both
   printed. On a shared, oversubscribed machine torch's worker threads spin and inflate the CPU time, so run
   with ``--threads 1`` there: its rate per CPU-second is what one dedicated core does.

Run: ``python benchmarks/specimens.py [--quick] [--threads N] [--skip-realism] [--skip-speed]``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from cryophase.conventions import ICE_MEAN_INNER_POTENTIAL_VOLT, interaction_constant_rad_per_volt_angstrom
from cryophase.specimens.atoms import AtomicModel
from cryophase.specimens.rotations import uniform_rotations
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein

STRUCTURES = Path(__file__).parents[1] / ".." / "shared" / "data" / "structures"
PROTEINS = ("1aki.pdb", "3o5r.pdb", "1dix.pdb", "1o1z.pdb", "1osm.pdb", "5h73.pdb", "7gsa.cif", "adk_open.pdb",
            "1a28.pdb", "19hc.pdb", "2d0f.pdb", "1f2n.pdb", "1BD2.cif", "1ncb.cif", "1igy.pdb", "3KPR.cif",
            "3wip.pdb")
BAND_EDGES_ANGSTROM = (50.0, 30.0, 20.0, 15.0, 12.0, 10.0, 8.5, 7.0)
BOX = 64


def phase_images(model: AtomicModel, n: int, pixel: float, generator: torch.Generator) -> torch.Tensor:
    rotations = uniform_rotations(n, generator, torch.float64)
    projection = model.project(rotations, torch.zeros(n, 2, dtype=torch.float64), (BOX, BOX), pixel)
    sigma = float(interaction_constant_rad_per_volt_angstrom(300.0))
    return sigma * (projection.potential_volt_angstrom
                    - ICE_MEAN_INNER_POTENTIAL_VOLT * projection.excluded_thickness_angstrom)


def band_power(images: torch.Tensor, pixel: float) -> torch.Tensor:
    """Mean power in each band of BAND_EDGES_ANGSTROM, averaged over images: (n_bands,)."""
    power = torch.fft.rfft2(images).abs() ** 2
    qy = torch.fft.fftfreq(BOX, d=pixel, dtype=torch.float64)
    qx = torch.fft.rfftfreq(BOX, d=pixel, dtype=torch.float64)
    q = torch.sqrt(qy[:, None] ** 2 + qx[None, :] ** 2)
    out = []
    for low, high in zip(BAND_EDGES_ANGSTROM[:-1], BAND_EDGES_ANGSTROM[1:]):
        band = (q >= 1 / low) & (q < 1 / high)
        out.append(power[:, band].mean() if band.any() else torch.tensor(float("nan"), dtype=torch.float64))
    return torch.stack(out)


def realism(n_images: int, n_models: int, generator: torch.Generator) -> None:
    config = SyntheticProteinConfig()
    labels = [f"{a:g}-{b:g} A" for a, b in zip(BAND_EDGES_ANGSTROM[:-1], BAND_EDGES_ANGSTROM[1:])]
    print("| structure | kDa | A/px | " + " | ".join(labels) + " | peak phase real | ratio |")
    print("|---" * (len(labels) + 6) + "|")
    all_ratios = []
    for name in PROTEINS:
        real = AtomicModel.from_file(STRUCTURES / name)
        mass_kda = real.mass_dalton / 1000
        pixel = min(3.5, max(1.5, 2.4 * real.radius_angstrom / BOX))
        real_images = phase_images(real, n_images, pixel, generator)
        synthetic_images = torch.cat([
            phase_images(random_synthetic_protein(config, generator, mass_kda=mass_kda),
                         max(1, n_images // n_models), pixel, generator)
            for _ in range(n_models)
        ])
        ratio = band_power(synthetic_images, pixel) / band_power(real_images, pixel)
        all_ratios.append(ratio)
        peak_real = real_images.amax(dim=(1, 2)).mean()
        peak_ratio = synthetic_images.amax(dim=(1, 2)).mean() / peak_real
        cells = " | ".join("-" if math.isnan(r) else f"{r:.2f}" for r in ratio.tolist())
        print(f"| {name} | {mass_kda:.0f} | {pixel:.2f} | {cells} | {peak_real:.3f} | {peak_ratio:.2f} |")
    stacked = torch.stack(all_ratios)
    valid = ~torch.isnan(stacked)
    logs = torch.where(valid, stacked.log(), torch.zeros_like(stacked))
    geometric = torch.exp(logs.sum(0) / valid.sum(0))
    worst_low = torch.where(valid, stacked, torch.full_like(stacked, math.inf)).amin(0)
    worst_high = torch.where(valid, stacked, torch.full_like(stacked, -math.inf)).amax(0)
    print("| geometric mean | | | " + " | ".join(f"{r:.2f}" for r in geometric.tolist()) + " | | |")
    print("| min | | | " + " | ".join(f"{r:.2f}" for r in worst_low.tolist()) + " | | |")
    print("| max | | | " + " | ".join(f"{r:.2f}" for r in worst_high.tolist()) + " | | |")


def copies_of(model: AtomicModel, n_copies: int) -> AtomicModel:
    """``n_copies`` of a model arranged with Cn symmetry about z, side by side."""
    positions = []
    distance = 1.7 * model.radius_angstrom
    for k in range(n_copies):
        angle = 2 * math.pi * k / n_copies
        c, s = math.cos(angle), math.sin(angle)
        rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        positions.append((model.positions_angstrom + torch.tensor([distance, 0.0, 0.0], dtype=torch.float64)) @ rot.T)
    return AtomicModel(f"{model.name}x{n_copies}", torch.cat(positions), model.atomic_numbers.repeat(n_copies),
                       model.occupancies.repeat(n_copies))


class Clock:
    """Wall-clock and CPU time of this process (the CPU time is robust to other jobs sharing the cores)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def rates(self, n: int) -> str:
        """'wall-clock rate | rate per CPU-second' for n items."""
        return f"{n / self.wall:.0f} | {n / self.cpu:.0f}"


def rate(model: AtomicModel, n: int, batch: int, generator: torch.Generator) -> str:
    rotations = uniform_rotations(n, generator, torch.float32)
    shifts = torch.zeros(n, 2)
    model.project(rotations[:batch], shifts[:batch], (BOX, BOX), 2.0)  # warm-up (plan, allocator)
    with Clock() as clock:
        for i in range(0, n, batch):
            model.project(rotations[i:i + batch], shifts[i:i + batch], (BOX, BOX), 2.0)
    return clock.rates(n)


def speed(generator: torch.Generator, quick: bool) -> None:
    n = 256 if quick else 1024
    big = copies_of(AtomicModel.from_file(STRUCTURES / "3wip.pdb"), 3)
    print("| benchmark | wall-clock | per CPU-second |\n|---|---|---|")
    print(f"| {big.num_atoms}-atom model ({big.name}), 64x64 float32, particles/s | {rate(big, n, 64, generator)} |")
    config = SyntheticProteinConfig()
    with Clock() as clock:
        for _ in range(5):
            random_synthetic_protein(config, generator, mass_kda=100.0)
    print(f"| draw a 100 kDa synthetic model, models/s | {clock.rates(5)} |")
    pool_size = 8 if quick else 32
    with Clock() as clock:
        pool = [random_synthetic_protein(config, generator) for _ in range(pool_size)]
    print(f"| draw default synthetic models ({config.min_mass_kda:g}-{config.max_mass_kda:g} kDa), models/s | "
          f"{clock.rates(pool_size)} |")
    mean_atoms = sum(m.num_atoms for m in pool) / pool_size
    per_model = max(64, n // pool_size)
    with Clock() as clock:
        for model in pool:
            rotations = uniform_rotations(per_model, generator, torch.float32)
            model.project(rotations, torch.zeros(per_model, 2), (BOX, BOX), 2.0)
    print(f"| pool of {pool_size} synthetic models (mean {mean_atoms:.0f} atoms), 64x64 float32, particles/s | "
          f"{clock.rates(pool_size * per_model)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (for a smoke run)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-realism", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    if not STRUCTURES.is_dir():
        raise SystemExit(f"shared structures not found at {STRUCTURES}")
    if not args.skip_realism:
        realism(16 if args.quick else 48, 4 if args.quick else 8, generator)
    if not args.skip_speed:
        print()
        speed(generator, args.quick)


if __name__ == "__main__":
    main()
