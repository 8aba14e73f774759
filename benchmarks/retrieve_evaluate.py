"""Throughput and memory of ``cryophase retrieve`` (read, convert, retrieve, write) and ``evaluate``.

Writes a simulated RELION-normalised stack of Gaussian-blob particles to a temporary folder, runs
``cryophase retrieve`` with each method in a child process (so its peak resident memory is measured alone),
evaluates the result in batches, and prints a markdown table of particles per second, the retrieve process's
peak memory and the mean NCC / FRC 0.143 against the truth. Peak memory should not grow with ``--n``: the
input is memory-mapped and the output written in chunks.

    python benchmarks/retrieve_evaluate.py [--n 512] [--box 128] [--methods wiener phase-flip] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryophase.conventions import relion_normalise
from cryophase.evaluation import EvaluationConfig
from cryophase.evaluation.stacks import evaluate_stacks
from cryophase.io.mrc import MrcStackWriter
from cryophase.io.star import optics_table, write_star
from cryophase.physics import ImagingPhysics, Optics, sample_counts
from cryophase.retrieve_stack import RetrieveConfig

PIXEL_A, DOSE = 2.0, 60.0


def blob_phases(n: int, box: int, generator: torch.Generator) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(box, dtype=torch.float32), torch.arange(box, dtype=torch.float32),
                            indexing="ij")
    centres = box / 2 + (box / 12) * torch.randn(n, 6, 2, generator=generator)
    phase = torch.zeros(n, box, box)
    for i in range(6):
        r2 = (yy - centres[:, i, 0, None, None]) ** 2 + (xx - centres[:, i, 1, None, None]) ** 2
        phase += 0.1 * torch.exp(-r2 / (2 * (box / 20) ** 2))
    return phase


def make_dataset(folder: Path, n: int, box: int, chunk: int = 256) -> Path:
    """Truth phases and normalised particles, simulated and written ``chunk`` particles at a time."""
    generator = torch.Generator().manual_seed(0)
    optics = Optics.create(defocus_u_angstrom=torch.linspace(10000, 25000, n), pixel_size_angstrom=PIXEL_A)
    truth = MrcStackWriter(folder / "truth.mrcs", n, (box, box), PIXEL_A)
    particles_stack = MrcStackWriter(folder / "particles.mrcs", n, (box, box), PIXEL_A)
    for begin in range(0, n, chunk):
        end = min(begin + chunk, n)
        phase = blob_phases(end - begin, box, generator)
        physics = ImagingPhysics(optics[begin:end], DOSE)
        counts = sample_counts(physics.expected_counts(phase), generator)
        truth.write(begin, phase)
        particles_stack.write(begin, relion_normalise(counts))
    truth.finalize()
    particles_stack.finalize()
    particles = pd.DataFrame({"rlnImageName": [f"{i + 1:06d}@particles.mrcs" for i in range(n)],
                              "rlnDefocusU": optics.defocus_u_angstrom.numpy(),
                              "rlnDefocusV": optics.defocus_v_angstrom.numpy(),
                              "rlnDefocusAngle": np.zeros(n), "rlnOpticsGroup": np.ones(n, dtype=int)})
    star = folder / "particles.star"
    write_star(star, {"optics": optics_table(optics, box), "particles": particles})
    return star


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--batch", type=int, default=RetrieveConfig.batch_size)
    parser.add_argument("--methods", nargs="+", default=["wiener", "phase-flip"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        star = make_dataset(folder, args.n, args.box)
        print(f"{args.n} particles, {args.box}x{args.box}, {args.threads} threads, device {args.device}\n")
        print("| method | particles/s | retrieve peak RSS (MiB) | mean NCC | FRC 0.143 of mean curve (A) "
              "| evaluate images/s |")
        print("|---|---|---|---|---|---|")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        for method in args.methods:
            out = folder / method
            subprocess.run([shutil.which("cryophase") or "cryophase", "retrieve", str(star), "--method", method,
                            "--out", str(out), "--dose", str(DOSE), "--batch-size", str(args.batch),
                            "--device", args.device], check=True, env=env, capture_output=True)
            record = json.loads((out / "retrieve.json").read_text())
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            start = time.perf_counter()
            result = evaluate_stacks(folder / "truth.mrcs", out / "phases.mrcs", pixel_size_angstrom=None,
                                     config=EvaluationConfig())
            metrics_rate = args.n / (time.perf_counter() - start)
            print(f"| {method} | {args.n / record['seconds']:.1f} | {rss:.0f} | "
                  f"{float(result.per_image['ncc'].mean()):.3f} | "
                  f"{result.mean_frc_resolutions['frc_0.143_angstrom']:.1f} | {metrics_rate:.0f} |")

if __name__ == "__main__":
    main()
