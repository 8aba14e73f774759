"""Peak memory and throughput of ``cryophase retrieve`` on synthetic stacks of 10k to 1M particles.

Writes synthetic electron-count stacks (Poisson-like noise around a few projected blobs, 16 defocus values,
written chunk by chunk with ``MrcStackWriter``) and a RELION 3.1 STAR file for each size, runs
``python -m cryophase retrieve`` on each in a child process, samples the child's ``/proc/PID/status`` every
50 ms and prints a markdown table:

* peak RssAnon: anonymous memory (heap, tensors, the metadata table): what the run really holds;
* peak RSS (VmHWM): anonymous + file pages mapped into the process (the memory-mapped input);
* particles/s over the whole command (start-up, reading the STAR file and writing outputs included);
* the input STAR file's size: its 26 columns are those of a RELION Refine3D particles table.

Usage::

    python benchmarks/streaming.py --sizes 10000 100000 1000000 --workdir /tmp/cryophase-streaming
    python benchmarks/streaming.py --method ldm --option n_steps=1 --sizes 10000 100000

A 1,000,000 x 64 x 64 float32 stack is 16 GiB: check ``df -h`` of ``--workdir`` first (``--dtype float16``
halves it). Stacks are kept in ``--workdir`` and reused by later runs unless ``--clean``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryophase.io.mrc import MrcStackWriter
from cryophase.io.star import write_star
from cryophase.physics import ImagingPhysics, Optics

PIXEL_A, DOSE_E_PER_A2, N_TEMPLATES = 2.0, 40.0, 16
DEFOCI_ANGSTROM = np.linspace(8000, 25000, N_TEMPLATES)


def template_counts(box: int) -> torch.Tensor:
    """Expected counts of a few weak-phase blobs at 16 defoci, ``(16, box, box)`` float32."""
    yy, xx = torch.meshgrid(torch.arange(box, dtype=torch.float64), torch.arange(box, dtype=torch.float64),
                            indexing="ij")
    phase = torch.zeros(box, box, dtype=torch.float64)
    for dy, dx, sigma in ((0, 0, box / 10), (box / 8, -box / 10, box / 16), (-box / 9, box / 12, box / 20)):
        phase += 0.15 * torch.exp(-((yy - box / 2 - dy) ** 2 + (xx - box / 2 - dx) ** 2) / (2 * sigma**2))
    optics = Optics.create(defocus_u_angstrom=torch.tensor(DEFOCI_ANGSTROM), voltage_kv=300.0, cs_mm=2.7,
                           amplitude_contrast=0.1, pixel_size_angstrom=PIXEL_A, dtype=torch.float64)
    return ImagingPhysics(optics, DOSE_E_PER_A2).expected_counts(phase.expand(N_TEMPLATES, -1, -1)).float()


def write_synthetic(folder: Path, n: int, box: int, dtype: np.dtype, chunk: int = 8192) -> Path:
    """``folder/particles.mrcs`` (n noisy copies of the templates) and ``folder/particles.star``.

    The STAR file carries what a RELION Refine3D particles table does (micrograph names, coordinates, angles,
    origins, class, half set, ...), so that the metadata's share of memory is measured at a realistic size.
    """
    star, stack = folder / "particles.star", folder / "particles.mrcs"
    folder.mkdir(parents=True, exist_ok=True)
    if not stack.exists():
        templates = template_counts(box)
        generator = torch.Generator().manual_seed(0)
        writer = MrcStackWriter(stack, n, (box, box), PIXEL_A, dtype=dtype)
        for begin in range(0, n, chunk):
            expected = templates[torch.arange(begin, min(begin + chunk, n)) % N_TEMPLATES]
            noise = torch.randn(expected.shape, generator=generator)  # Gaussian approximation of Poisson noise
            writer.write(begin, (expected + expected.sqrt() * noise).round().clamp_min(0))
        writer.finalize()
    if star.exists():
        return star
    rng = np.random.default_rng(0)
    index = np.arange(n)
    defocus = DEFOCI_ANGSTROM[index % N_TEMPLATES]
    micrograph = [f"MotionCorr/job002/Movies/FoilHole_{i // 300:08d}_Data_fractions.mrc" for i in index]
    particles = pd.DataFrame({
        "rlnCoordinateX": rng.uniform(0, 4096, n).round(1), "rlnCoordinateY": rng.uniform(0, 4096, n).round(1),
        "rlnClassNumber": 1, "rlnAutopickFigureOfMerit": rng.normal(1, 0.3, n).round(6),
        "rlnAnglePsi": rng.uniform(-180, 180, n).round(6),
        "rlnImageName": [f"{i + 1:07d}@particles.mrcs" for i in index],
        "rlnMicrographName": micrograph,
        "rlnOpticsGroup": 1, "rlnCtfMaxResolution": rng.uniform(3, 6, n).round(6),
        "rlnCtfFigureOfMerit": rng.uniform(0.05, 0.3, n).round(6),
        "rlnDefocusU": defocus, "rlnDefocusV": defocus, "rlnDefocusAngle": 0.0,
        "rlnCtfBfactor": 0.0, "rlnCtfScalefactor": 1.0, "rlnPhaseShift": 0.0,
        "rlnGroupNumber": index // 300 % 50 + 1,
        "rlnAngleRot": rng.uniform(-180, 180, n).round(6), "rlnAngleTilt": rng.uniform(0, 180, n).round(6),
        "rlnOriginXAngst": rng.normal(0, 2, n).round(6), "rlnOriginYAngst": rng.normal(0, 2, n).round(6),
        "rlnNormCorrection": rng.normal(1, 0.05, n).round(6), "rlnLogLikeliContribution": rng.normal(1e5, 1e3, n).round(2),
        "rlnMaxValueProbDistribution": rng.uniform(0, 1, n).round(6), "rlnNrOfSignificantSamples": 1,
        "rlnRandomSubset": index % 2 + 1,
    })
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnAmplitudeContrast": [0.1], "rlnSphericalAberration": [2.7], "rlnVoltage": [300.0],
                           "rlnImagePixelSize": [PIXEL_A], "rlnImageSize": [box], "rlnImageDimensionality": [2]})
    write_star(star, {"optics": optics, "particles": particles})
    return star


def _status_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0])
    return values


@dataclass
class Measurement:
    n: int
    seconds: float
    peak_rss_anon_mib: float
    peak_rss_mib: float
    peak_rss_file_mib: float
    star_mib: float = 0.0


def measure(command: list[str], n: int, threads: int | None = None) -> Measurement:
    """Run ``command``, sampling its memory every 50 ms; fail loudly if it fails."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}

    def sample() -> None:
        while child.poll() is None:
            try:
                status = _status_kib(child.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            for key in peaks:
                peaks[key] = max(peaks[key], status.get(key, 0))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{stderr[-3000:]}")
    print(stdout.strip(), file=sys.stderr)
    return Measurement(n, seconds, peaks["RssAnon"] / 1024, peaks["VmHWM"] / 1024, peaks["RssFile"] / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--method", default="wiener")
    parser.add_argument("--weights", type=Path, default=None, help="weights folder for learned methods (ldm)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: RetrieveConfig's")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="method option passed to retrieve (e.g. n_steps=5 for ldm: memory does not depend on "
                             "the number of sampler steps, time does)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the retrieve process (OMP_NUM_THREADS); default: torch's choice. On a "
                             "shared machine 1 thread avoids the spinning of competing thread pools")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cryophase-streaming"))
    parser.add_argument("--clean", action="store_true", help="delete each synthetic stack after its run")
    args = parser.parse_args()

    rows = []
    for n in args.sizes:
        folder = args.workdir / f"n{n}_box{args.box}_{args.dtype}"
        t0 = time.perf_counter()
        star = write_synthetic(folder, n, args.box, np.dtype(args.dtype))
        print(f"stack of {n} ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out = folder / f"out_{args.method}"
        command = [sys.executable, "-m", "cryophase", "retrieve", str(star), "--method", args.method, "--out",
                   str(out), "--overwrite", "--device", args.device]
        if args.weights is not None:
            command += ["--weights", str(args.weights)]
        if args.batch_size is not None:
            command += ["--batch-size", str(args.batch_size)]
        for option in args.option:
            command += ["--option", option]
        rows.append(measure(command, n, args.threads))
        rows[-1].star_mib = star.stat().st_size / 2**20
        shutil.rmtree(out)
        if args.clean:
            shutil.rmtree(folder)

    options = "".join(f" --option {o}" for o in args.option)
    threads = f"{args.threads} thread(s)" if args.threads else "default threads"
    print(f"\n`retrieve --method {args.method}{options}`, {args.box}x{args.box} {args.dtype} counts, "
          f"{os.cpu_count()} CPU cores, {threads}, device {args.device}\n")
    print("| particles | stack GiB | STAR MiB | peak RssAnon MiB | peak RSS (VmHWM) MiB | peak RssFile MiB | seconds "
          "| particles/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in rows:
        gib = m.n * args.box**2 * np.dtype(args.dtype).itemsize / 2**30
        print(f"| {m.n:,} | {gib:.2f} | {m.star_mib:.0f} | {m.peak_rss_anon_mib:.0f} | {m.peak_rss_mib:.0f} | "
              f"{m.peak_rss_file_mib:.0f} | {m.seconds:.1f} | {m.n / m.seconds:,.0f} |")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        per_particle = (last.peak_rss_anon_mib - first.peak_rss_anon_mib) * 2**20 / (last.n - first.n)
        print(f"\nPeak RssAnon grows by {per_particle:.0f} bytes per particle from {first.n:,} to {last.n:,} "
              f"particles (one image is {args.box**2 * 4:,} bytes as float32).")


if __name__ == "__main__":
    main()
