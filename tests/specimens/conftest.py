from pathlib import Path

import pytest

DATA = Path(__file__).parents[2] / ".." / "shared" / "data"


@pytest.fixture
def structures_dir() -> Path:
    folder = DATA / "structures"
    if not folder.is_dir():
        pytest.skip(f"shared test data not found at {folder}")
    return folder


@pytest.fixture
def maps_dir() -> Path:
    folder = DATA / "maps"
    if not folder.is_dir():
        pytest.skip(f"shared test data not found at {folder}")
    return folder
