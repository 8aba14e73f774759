"""``cryophase_relion_external``: phase retrieval as a RELION 4/5 External job.

RELION's External job runs, from the project folder::

    cryophase_relion_external --in_parts Select/job010/particles.star --o External/job012/ --j 4 \\
        --method wiener --dose 30 [--other_param value ...]

(``--in_parts``, ``--o`` and ``--j`` come from the Input and Running tabs; every row of the Params tab is passed
as ``--label value``.) The job retrieves the phase of every particle into the job folder and writes

* ``JOBDIR/phases.mrcs``, ``phases.star``, ``retrieve.json`` (as ``cryophase retrieve``);
* ``JOBDIR/particles.star``: the input metadata pointing to ``JOBDIR/phases.mrcs``, for downstream jobs;
* ``JOBDIR/RELION_OUTPUT_NODES.star``: the output node (``particles.star``, node type
  ``ParticleGroupMetadata.star.relion``), so that the pipeline and other jobs' input browsers see it;
* ``JOBDIR/RELION_JOB_EXIT_SUCCESS``, or ``RELION_JOB_EXIT_FAILURE`` with the error on stderr (RELION writes
  stderr to ``run.err``) and a non-zero exit, or ``RELION_JOB_EXIT_ABORTED`` when the GUI's Abort button
  creates ``RELION_JOB_ABORT_NOW``.

Running the job again in the same folder continues an interrupted run (same settings) and redoes a finished
one.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import traceback
from pathlib import Path

import pandas as pd
import torch

from cryophase.errors import USER_ERRORS
from cryophase.io.outputs import atomic_path
from cryophase.io.star import write_star
from cryophase.retrieve_stack import (OUTPUT_FILES, PHASES_STAR, RetrieveConfig, parse_method_options,
                                      retrieve_stack)

PARTICLES_STAR = "particles.star"
OUTPUT_NODES_STAR = "RELION_OUTPUT_NODES.star"
PARTICLES_NODE_TYPE = "ParticleGroupMetadata.star.relion"
EXIT_SUCCESS = "RELION_JOB_EXIT_SUCCESS"
EXIT_FAILURE = "RELION_JOB_EXIT_FAILURE"
EXIT_ABORTED = "RELION_JOB_EXIT_ABORTED"
ABORT_NOW = "RELION_JOB_ABORT_NOW"
_DEFAULTS = RetrieveConfig()


class JobAborted(Exception):
    """The RELION GUI asked the job to stop (``RELION_JOB_ABORT_NOW`` appeared in the job folder)."""


def _yes_no(text: str) -> bool | None:
    """RELION-style booleans: yes/no/true/false/1/0; "auto" or "" means detect."""
    value = text.strip().lower()
    if value in ("", "auto", "detect"):
        return None
    if value in ("yes", "y", "true", "1"):
        return True
    if value in ("no", "n", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes, no or auto, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """RELION's External-job arguments plus the cryophase options (underscored, as RELION param labels)."""
    p = argparse.ArgumentParser(prog="cryophase_relion_external", description=__doc__.splitlines()[0])
    p.add_argument("--in_parts", required=True, type=Path, help="input particles STAR file (Input tab)")
    p.add_argument("--o", required=True, type=Path, dest="job_dir", help="job folder, e.g. External/job012/")
    p.add_argument("--j", type=int, default=1, dest="threads", help="CPU threads (Running tab)")
    p.add_argument("--pipeline_control", default=None, help="passed by RELION's scheduler; unused")
    p.add_argument("--method", required=True, help="retrieval method, e.g. ldm, wiener, ml, raar")
    p.add_argument("--dose", type=float, default=_DEFAULTS.dose_e_per_a2,
                   help="electron dose per particle image, e/A^2 (required for RELION-normalised particles)")
    p.add_argument("--batch_size", type=int, default=_DEFAULTS.batch_size)
    p.add_argument("--chunk_size", type=int, default=_DEFAULTS.chunk_size)
    p.add_argument("--device", default=_DEFAULTS.device, help="cpu, cuda or auto")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument("--pixel_size", type=float, default=_DEFAULTS.pixel_size_angstrom,
                   help="override the pixel size, Angstrom")
    p.add_argument("--normalised", type=_yes_no, default=_DEFAULTS.normalised, help="yes, no or auto (detect)")
    p.add_argument("--inverted", type=_yes_no, default=_DEFAULTS.inverted, help="yes, no or auto (detect)")
    p.add_argument("--weights", type=Path, default=None, help="weights folder for learned methods")
    p.add_argument("--method_options", default="",
                   help='method settings as space-separated KEY=VALUE, e.g. "n_steps=50 sampler=ddim"')
    return p


def write_output_nodes(job_dir: Path) -> Path:
    """``RELION_OUTPUT_NODES.star`` naming ``JOBDIR/particles.star`` as a particles node (RELION 4/5 labels)."""
    nodes = pd.DataFrame({"rlnPipeLineNodeName": [str(job_dir / PARTICLES_STAR)],
                          "rlnPipeLineNodeTypeLabel": [PARTICLES_NODE_TYPE]})
    path = job_dir / OUTPUT_NODES_STAR
    write_star(path, {"output_nodes": nodes})
    return path


def _clear_markers(job_dir: Path) -> None:
    for name in (EXIT_SUCCESS, EXIT_FAILURE, EXIT_ABORTED, ABORT_NOW):
        (job_dir / name).unlink(missing_ok=True)


def _config(args: argparse.Namespace, finished_before: bool) -> RetrieveConfig:
    """Continue an interrupted run; redo a finished one (RELION's re-run of a job replaces its results)."""
    return RetrieveConfig(batch_size=args.batch_size, chunk_size=args.chunk_size, device=args.device,
                          seed=args.seed, dose_e_per_a2=args.dose, normalised=args.normalised,
                          inverted=args.inverted, pixel_size_angstrom=args.pixel_size,
                          overwrite=finished_before, resume=not finished_before)


def run_job(args: argparse.Namespace) -> None:
    """Retrieve into the job folder and write the RELION outputs (markers are the caller's)."""
    job_dir = args.job_dir
    finished_before = any((job_dir / name).exists() for name in OUTPUT_FILES)
    method_options = parse_method_options(args.method_options.split())
    if args.weights is not None:
        method_options["weights"] = args.weights

    def progress(done: int, total: int) -> None:
        if (job_dir / ABORT_NOW).exists():
            raise JobAborted(f"aborted by RELION after {done} of {total} particles; run the job again to continue")

    summary = retrieve_stack(args.in_parts, job_dir, args.method, config=_config(args, finished_before),
                             method_options=method_options, progress=progress,
                             report=lambda line: print(line, flush=True))
    if summary.rank == 0:
        with atomic_path(job_dir / PARTICLES_STAR) as tmp:
            shutil.copyfile(job_dir / PHASES_STAR, tmp)
        write_output_nodes(job_dir)
        for note in summary.notes:
            print(f"note: {note}", flush=True)
        print(summary.line(), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 with ``RELION_JOB_EXIT_SUCCESS``, else 1 with ``_FAILURE`` (or ``_ABORTED``)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # bad arguments: argparse printed why; RELION must still see the job fail
        if exc.code and "--o" in argv[:-1]:
            job_dir = Path(argv[argv.index("--o") + 1])
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / EXIT_FAILURE).touch()
        return int(exc.code or 0)
    job_dir = args.job_dir
    job_dir.mkdir(parents=True, exist_ok=True)
    _clear_markers(job_dir)
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # RELION's "Number of threads" (this is an executable, not library)
    try:
        run_job(args)
    except JobAborted as exc:
        print(f"cryophase: {exc}", file=sys.stderr, flush=True)
        (job_dir / ABORT_NOW).unlink(missing_ok=True)
        (job_dir / EXIT_ABORTED).touch()
        return 1
    except USER_ERRORS as exc:
        print(f"cryophase: error: {exc}", file=sys.stderr, flush=True)
        (job_dir / EXIT_FAILURE).touch()
        return 1
    except Exception as exc:  # an unexpected failure: RELION must still see the job fail, with the traceback
        traceback.print_exc(file=sys.stderr)
        print(f"cryophase: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        (job_dir / EXIT_FAILURE).touch()
        return 1
    (job_dir / EXIT_SUCCESS).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
