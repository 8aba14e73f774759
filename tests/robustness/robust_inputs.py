"""Helpers of the robustness tests: a tiny simulated data set, CLI invocation, error and snapshot checks."""

from __future__ import annotations

import os
from pathlib import Path

import starfile
import torch
from typer.testing import CliRunner

from cryophase.simulation import SimulationConfig
from cryophase.simulation.dataset import simulate_dataset
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein

BOX = 32
N_PARTICLES = 4


def simulate_small(folder: Path, n: int = N_PARTICLES, box: int = BOX, seed: int = 0) -> Path:
    specimen = random_synthetic_protein(SyntheticProteinConfig(), torch.Generator().manual_seed(seed))
    simulate_dataset(folder, n, [specimen], SimulationConfig(box_size=box), seed, progress=False)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` (hidden ones included) with its size and mtime; {} if absent."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(args: list):
    """Run the CLI in-process; the Result keeps stderr apart (``result.stderr``)."""
    from cryophase.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_user_error(result, *phrases: str) -> None:
    """Exit code 2, stderr ends in one ``cryophase: error:`` line holding every phrase; no traceback.

    (Lines before it are what was detected about the input, e.g. ``detected electron counts``.)
    """
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    errors = [line for line in err.splitlines() if line.startswith("cryophase: error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])


def read_star(path: Path) -> dict:
    return starfile.read(path, always_dict=True)


def write_star_blocks(path: Path, blocks: dict) -> Path:
    starfile.write(blocks, path, overwrite=True)
    return path


def can_be_made_unreadable(path: Path) -> bool:
    """chmod 000 and check: root ignores permissions, so the test cannot run as root."""
    os.chmod(path, 0)
    return not os.access(path, os.R_OK)
