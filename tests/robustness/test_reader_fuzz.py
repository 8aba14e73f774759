"""Property-based tests: the MRC and STAR readers give a clean error or a correct read, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryophase.io.mrc import MrcError, MrcStack, write_stack
from cryophase.io.star import StarError, read_particles_star

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_stack(tmp_path: Path) -> Path:
    images = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    path = tmp_path / "ok.mrcs"
    write_stack(path, images, 2.5)
    return path


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_as_mrc(tmp_path, data):
    path = tmp_path / "random.mrcs"
    path.write_bytes(data)
    try:
        with MrcStack(path) as stack:
            block = stack.read(slice(None))
            assert block.ndim == 3 and block.shape[0] == len(stack)
    except MrcError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=1024 + 3 * 8 * 8 * 4 - 1))
def test_truncated_mrc(tmp_path, cut):
    good = _valid_stack(tmp_path)
    data = good.read_bytes()[:cut]
    path = tmp_path / "truncated.mrcs"
    path.write_bytes(data)
    with pytest.raises(MrcError, match="truncated.mrcs"):
        with MrcStack(path) as stack:
            stack.read(slice(None))


def test_valid_mrc_round_trip(tmp_path):
    path = _valid_stack(tmp_path)
    with MrcStack(path) as stack:
        np.testing.assert_array_equal(stack.read(slice(None)).numpy(),
                                      np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8))
        assert stack.pixel_size_angstrom == pytest.approx(2.5)


STAR_TEXT = """
data_optics

loop_
_rlnOpticsGroup #1
_rlnVoltage #2
_rlnSphericalAberration #3
_rlnAmplitudeContrast #4
_rlnImagePixelSize #5
1 300.0 2.7 0.1 2.5

data_particles

loop_
_rlnImageName #1
_rlnDefocusU #2
_rlnDefocusV #3
_rlnDefocusAngle #4
_rlnOpticsGroup #5
1@ok.mrcs 15000.0 14800.0 10.0 1
2@ok.mrcs 16000.0 15800.0 20.0 1
"""


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(STAR_TEXT)))
def test_truncated_star(tmp_path, cut):
    path = tmp_path / "cut.star"
    path.write_text(STAR_TEXT[:cut])
    try:
        table = read_particles_star(path)
    except StarError as exc:
        assert "cut.star" in str(exc)
        return
    # a successful read must be a correct read of the rows that survived the cut
    assert 1 <= len(table) <= 2
    assert table.particles["rlnDefocusU"].iloc[0] == pytest.approx(15000.0)


@FUZZ
@given(text=st.text(max_size=600))
def test_random_text_as_star(tmp_path, text):
    path = tmp_path / "random.star"
    path.write_text(text)
    try:
        read_particles_star(path)
    except StarError as exc:
        assert "random.star" in str(exc)


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_as_star(tmp_path, data):
    path = tmp_path / "bytes.star"
    path.write_bytes(data)
    try:
        read_particles_star(path)
    except StarError as exc:
        assert "bytes.star" in str(exc)
