"""Speed and memory: simulation and every retrieval method, particles per second and peak memory, per box size.

For each box size (default 64 and 256 px over the same 224 A field of view: 3.5 A/px, the shipped model's grid,
and 0.875 A/px) this measures

* ``simulate``: :func:`cryophase.simulation.simulate_batch` from a pool of synthetic proteins, timed with
  ``rate`` of ``benchmarks/simulate.py`` (simulator defaults: ice, k3 detector, neighbours; one dose);
* every registered reconstructor (``cryophase.retrieval.available_methods()``) on a simulated batch at 30 e/A^2,
  with its default options; the diffusion models (``ldm``, ``pixel-diffusion``) with ``--steps`` steps and one
  sample; ``ldm``/``regression`` with ``--weights`` (default: the shipped 64 px, 3.5 A/px ones),
  ``pixel-diffusion`` with ``--pixel-weights`` (none ship; without it the row says "skipped"). Learned models
  Fourier-rescale other boxes to their grid and back; their conditioning method runs at the input's size.

Each (box, stage) runs in a child process of its own (this script with the hidden ``--one BOX STAGE``), so peak
memory of one row is not inherited by the next. In the child, the input is built and the method warmed up on two
particles, the peak-RSS counter is reset (``/proc/self/clear_refs``; where that is not allowed the peak covers the
whole child), the batch is processed ``--repeats`` times, and VmHWM is read from ``/proc/self/status``. Reported:
particles/s (wall clock); particles per CPU-second of the child over the timed run (for ``simulate`` including
the warm-up batch inside ``rate``), the load-independent cost: on a machine shared with other jobs the wall rate
says as much about the neighbours; peak RSS (MiB, the whole process, including torch and the model weights) with
its rise over the RSS just before the timed run in the notes; and, on a GPU, the peak CUDA memory allocated by
torch. Run it on a quiet machine (``uptime``) for numbers worth quoting; ``--threads 1`` gives per-core rates.

    python benchmarks/speed.py [--device auto] [--threads 2] [--sizes 64 256] [--batch 64 16] [--repeats 1]
        [--steps 20] [--stages simulate gs ml ...] [--weights DIR] [--pixel-weights DIR] [--fov 224]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from _common import command_line
from cryophase.io.outputs import resolve_device
from cryophase.models.weights import WeightsError
from cryophase.retrieval import available_methods, get_method
from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein
from simulate import rate as simulation_rate

SIMULATE = "simulate"
DIFFUSION = ("ldm", "pixel-diffusion")
DOSE_E_PER_A2 = 30.0
WARM_UP_PARTICLES = 2
RESULT_MARK = "SPEED-RESULT "


def stages() -> list[str]:
    """``simulate`` then every registered reconstructor."""
    return [SIMULATE, *available_methods()]


def speed_config(box_size: int, field_of_view_angstrom: float) -> SimulationConfig:
    """Simulator defaults at ``box_size`` px covering ``field_of_view_angstrom``, one dose."""
    return replace(SimulationConfig(), box_size=box_size, pixel_size_angstrom=field_of_view_angstrom / box_size,
                   dose_range_e_per_a2=(DOSE_E_PER_A2, DOSE_E_PER_A2))


def synthetic_pool(count: int, seed: int) -> list:
    """``count`` random synthetic proteins (the same pool for every row)."""
    generator = torch.Generator().manual_seed(seed)
    return [random_synthetic_protein(SyntheticProteinConfig(), generator) for _ in range(count)]


def build_method(name: str, args):
    """The reconstructor with its default options, learned ones with their weights, diffusion with ``--steps``."""
    if name in DIFFUSION:
        weights = args.pixel_weights if name == "pixel-diffusion" else args.weights
        return get_method(name, weights=weights, n_steps=args.steps, samples=1)
    if name == "regression":
        return get_method("regression", weights=args.weights)
    return get_method(name)


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field} (speed.py reads memory from Linux /proc)")
    return int(match.group(1))


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_retrieval(method, batch, repeats: int, device: torch.device, seed: int) -> float:
    """Wall seconds of ``repeats`` reconstructions of the whole batch (after synchronising a GPU)."""
    synchronise(device)
    start = time.perf_counter()
    for _ in range(repeats):
        method.reconstruct(batch.counts, batch.physics, generator=torch.Generator(device=device).manual_seed(seed))
    synchronise(device)
    return time.perf_counter() - start


def measure_one(stage: str, box_size: int, batch_size: int, args) -> dict:
    """Run one (box, stage) measurement in this process; returns rates and memory (MiB)."""
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = speed_config(box_size, args.fov)
    specimens = synthetic_pool(args.n_synthetic, args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    if stage == SIMULATE:
        work = lambda: simulation_rate(specimens, config, batch_size, args.repeats, device, generator)
    else:
        batch = simulate_batch(specimens, config, batch_size, generator, device=device)
        method = build_method(stage, args)
        method.reconstruct(batch.counts[:WARM_UP_PARTICLES], batch.physics[:WARM_UP_PARTICLES],
                           generator=torch.Generator(device=device).manual_seed(args.seed))
        work = lambda: batch_size * args.repeats / time_retrieval(method, batch, args.repeats, device, args.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    peak_reset = reset_peak_rss()
    rss_before = _status_kib("VmRSS")
    cpu_start = time.process_time()
    particles_per_s = work()
    cpu_seconds = time.process_time() - cpu_start
    processed = batch_size * args.repeats + (batch_size if stage == SIMULATE else 0)  # rate() warms up on a batch
    return {"particles_per_s": particles_per_s, "particles_per_cpu_s": processed / cpu_seconds,
            "peak_rss_mib": _status_kib("VmHWM") / 1024, "rss_before_mib": rss_before / 1024,
            "peak_reset": peak_reset, "device": str(device),
            "cuda_peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None}


def child_command(stage: str, box_size: int, batch_size: int, args) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--one", str(box_size), stage,
               "--one-batch", str(batch_size), "--device", args.device, "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--steps", str(args.steps), "--fov", str(args.fov),
               "--n-synthetic", str(args.n_synthetic), "--seed", str(args.seed)]
    for option, value in (("--weights", args.weights), ("--pixel-weights", args.pixel_weights)):
        if value is not None:
            command += [option, value]
    return command


def run_child(stage: str, box_size: int, batch_size: int, args) -> dict:
    """Measure in a fresh process; a failure comes back as ``{"error": last line of stderr}``."""
    done = subprocess.run(child_command(stage, box_size, batch_size, args), capture_output=True, text=True)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    lines = (done.stderr or done.stdout or f"exit status {done.returncode}").strip().splitlines()
    return {"error": lines[-1] if lines else f"exit status {done.returncode}"}


def describe_stage(stage: str, args) -> dict[str, str]:
    """What the parent knows of a stage before measuring it: a learned model's grid (``64 px at 3.5 A/px``) and
    conditioning method, or ``skipped`` (the reason) when its weights are missing."""
    if stage == SIMULATE:
        return {}
    try:
        method = build_method(stage, args)
    except WeightsError as error:
        return {"skipped": str(error)}
    if not hasattr(method, "grid"):
        return {}
    return {"grid": f"{method.grid.image_size} px at {method.grid.pixel_size_angstrom:g} A/px",
            "condition": method._condition.name}


def notes(stage: str, config: SimulationConfig, result: dict, args, described: dict) -> str:
    """What the row ran, and how the memory was measured."""
    parts = []
    if stage == SIMULATE:
        parts.append(f"{args.n_synthetic} synthetic proteins, canvas {config.canvas_size} px")
    if stage in DIFFUSION:
        parts.append(f"{args.steps} steps, 1 sample")
    if "grid" in described:
        parts.append(f"includes its {described['condition']} conditioning on the model's grid")
        if described["grid"] != f"{config.box_size} px at {config.pixel_size_angstrom:g} A/px":
            parts.append(f"input Fourier-rescaled to the model's {described['grid']} and back")
    rise = result["peak_rss_mib"] - result["rss_before_mib"]
    parts.append(f"+{rise:.0f} MiB over the RSS before the run" if result["peak_reset"]
                 else "peak over the whole child (peak reset not allowed)")
    return "; ".join(parts)


def row_cells(stage: str, box_size: int, batch_size: int, described: dict, args, cuda: bool) -> tuple[list, bool]:
    """The table cells of one (box, stage) row and whether it ran (or was skipped) without error."""
    config = speed_config(box_size, args.fov)
    head = [f"{box_size} ({config.pixel_size_angstrom:g} A/px)", stage, str(batch_size)]
    empty = ["-", "-"] + (["-"] if cuda else [])
    if "skipped" in described:
        return head + ["skipped"] + empty + [described["skipped"]], True
    result = run_child(stage, box_size, batch_size, args)
    if "error" in result:
        return head + ["failed"] + empty + [result["error"]], False
    cells = [f"{result['particles_per_s']:,.1f}", f"{result['particles_per_cpu_s']:,.1f}",
             f"{result['peak_rss_mib']:,.0f}"]
    cells += [f"{result['cuda_peak_mib']:,.0f}"] if cuda else []
    return head + cells + [notes(stage, config, result, args, described)], True


def table(args) -> tuple[str, bool]:
    """Run every (box, stage) child; the markdown table and whether every row ran or was skipped."""
    cuda = resolve_device(args.device).type == "cuda"
    described = {stage: describe_stage(stage, args) for stage in args.stages}
    header = ["box", "stage/method", "batch", "particles/s", "particles per CPU-s", "peak RSS MiB"]
    header += ["peak CUDA MiB"] if cuda else []
    header += ["notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ok = True
    for box_size, batch_size in zip(args.sizes, args.batch):
        for stage in args.stages:
            cells, row_ok = row_cells(stage, box_size, batch_size, described[stage], args, cuda)
            ok &= row_ok
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            print(lines[-1], file=sys.stderr, flush=True)  # progress
    return "\n".join(lines), ok


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads in each child")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="box sizes, pixels")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 16], help="particles per batch, one per size")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the batch (after a warm-up)")
    parser.add_argument("--steps", type=int, default=20, help="ldm sampler steps")
    parser.add_argument("--stages", nargs="+", default=stages(), choices=stages(), help="default: all")
    parser.add_argument("--weights", default=None, help="ldm/regression weights folder (default: the shipped ones)")
    parser.add_argument("--pixel-weights", default=None, help="pixel-diffusion weights folder (none ship)")
    parser.add_argument("--fov", type=float, default=224.0,
                        help="field of view, A; pixel size = fov / box (default 224: 64 px at 3.5 A/px)")
    parser.add_argument("--n-synthetic", type=int, default=8, help="synthetic proteins in the specimen pool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("BOX", "STAGE"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one-batch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if len(args.batch) != len(args.sizes):
        parser.error(f"--batch needs one value per --sizes value ({len(args.sizes)}), got {len(args.batch)}")
    if min(args.sizes) < 8 or min(args.batch) < WARM_UP_PARTICLES or args.repeats < 1:
        parser.error(f"sizes must be >= 8 px, batches >= {WARM_UP_PARTICLES} particles and --repeats >= 1")
    return args


def main() -> None:
    args = parse_arguments()
    if args.one is not None:
        box, stage = int(args.one[0]), args.one[1]
        if stage not in stages():
            raise SystemExit(f"--one: unknown stage {stage!r}; choose from {', '.join(stages())}")
        print(RESULT_MARK + json.dumps(measure_one(stage, box, args.one_batch, args)))
        return
    device = resolve_device(args.device)
    print(f"# Speed and peak memory per box size\n\n`{command_line()}`\n")
    print(f"device {device}, {args.threads} thread(s) per child, load average {os.getloadavg()[0]:.1f} at the start "
          f"({os.cpu_count()} CPUs), field of view {args.fov:g} A, {DOSE_E_PER_A2:g} e/A^2, float32, "
          f"{args.repeats} timed pass(es) per row after a warm-up; each row in its own process.\n")
    text, ok = table(args)
    print(text)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
