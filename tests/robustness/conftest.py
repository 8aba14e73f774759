"""Fixtures of the robustness tests: a simulated 4-particle data set (32 px) to break, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from robust_inputs import simulate_small


@pytest.fixture(scope="session")
def sim_source(tmp_path_factory) -> Path:
    """A pristine simulated folder (particles.mrcs, phases.mrcs, particles.star, simulation.json); never modify."""
    return simulate_small(tmp_path_factory.mktemp("sim") / "sim")


@pytest.fixture
def sim(sim_source, tmp_path) -> Path:
    """A private, modifiable copy of the simulated folder."""
    return Path(shutil.copytree(sim_source, tmp_path / "sim"))
