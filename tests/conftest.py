"""Shared test fixtures: the real-data folder beside the repository, and seeded generators."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data, or skip the test with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it ships beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
