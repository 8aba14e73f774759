"""STAR files read and rewritten line by line (bounded memory) agree with starfile's full reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile
import torch

from cryophase.io.star import IMAGING_COLUMNS, StarError, find_particles_table, read_particles_star
from cryophase.io.star_text import read_loop_columns, rewrite_loop_column, scan_loop_tables

REAL_STARS = [
    "aspire_sample/sample_particles_relion30.star",
    "aspire_sample/sample_particles_relion31.star",
    "cryoet_subtilts/sta_testing_bin8.star",
    "empiar10076/empiar_10076_7.star",
    "relion31/relion31.6opticsgroups.star",
    "relion31/relion31.star",
    "relion31/relion31.v2.star",
    "trpv1/trpv1_small_stack.star",
]

RELION30 = """
# a RELION 3.0 file with a quoted name and a comment line
data_

loop_
_rlnImageName #1
_rlnMicrographName #2
_rlnDefocusU #3
_rlnDefocusV #4
_rlnDefocusAngle #5
_rlnVoltage #6
_rlnSphericalAberration #7
_rlnAmplitudeContrast #8
_rlnMagnification #9
_rlnDetectorPixelSize #10
000001@Particles/a.mrcs  "mics/with space.mrc"  15000.0 14000.0 30.0 300 2.7 0.1 100000 14.0
000002@Particles/a.mrcs  mics/b.mrc  16000.0 15500.0 31.0 300 2.7 0.1 100000 14.0
# a comment inside the rows
000001@Particles/b.mrcs  mics/c.mrc  17000.0 16500.0 32.0 300 2.7 0.1 100000 14.0

"""


def _columns_equal(full: pd.DataFrame, some: pd.DataFrame) -> None:
    for column in some.columns:
        a, b = full[column].to_numpy(), some[column].to_numpy()
        if np.issubdtype(a.dtype, np.number):
            np.testing.assert_allclose(b.astype(np.float64), a.astype(np.float64), rtol=0, atol=0)
        else:
            assert list(map(str, a)) == list(map(str, b)), column


@pytest.mark.parametrize("name", REAL_STARS)
def test_reading_some_columns_equals_reading_all(shared_data, name):
    path = shared_data / "real_particles" / name
    full = read_particles_star(path)
    some = read_particles_star(path, columns=IMAGING_COLUMNS)
    assert len(some) == len(full)
    assert "rlnImageName" not in some.particles and some.image_names is not None
    _columns_equal(full.particles, some.particles)
    a, b = full.optics_for(), some.optics_for()
    for field in ("defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees", "voltage_kv", "cs_mm",
                  "amplitude_contrast", "pixel_size_angstrom", "phase_shift_degrees"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    try:
        locations = full.image_locations()
    except StarError:  # stacks not shipped beside this file: compare the encoded names instead
        locations = None
    if locations is not None:
        stacks_a, codes_a, index_a = locations
        stacks_b, codes_b, index_b = some.image_locations()
        assert [stacks_a[c] for c in codes_a] == [stacks_b[c] for c in codes_b]
        np.testing.assert_array_equal(index_a, index_b)
    names = full.particles["rlnImageName"].astype(str)
    rebuilt = [f"{n}@{some.image_names.stacks[c]}" for n, c in zip(some.image_names.numbers, some.image_names.codes)]
    assert [int(x.split("@")[0]) for x in names] == list(some.image_names.numbers)
    assert [x.split("@", 1)[1] for x in names] == [r.split("@", 1)[1] for r in rebuilt]


@pytest.mark.parametrize("name", REAL_STARS)
def test_rewriting_a_column_with_its_own_values_is_byte_identical(shared_data, tmp_path, name):
    path = shared_data / "real_particles" / name
    tables = scan_loop_tables(path)
    particles = find_particles_table(path, tables)
    original = read_loop_columns(path, particles, ["rlnImageName"])["rlnImageName"].astype(str)
    out = tmp_path / "same.star"
    rewrite_loop_column(path, out, particles, "rlnImageName", iter(original))
    assert out.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("name", REAL_STARS)
def test_rewritten_names_change_only_that_column(shared_data, tmp_path, name):
    path = shared_data / "real_particles" / name
    particles = find_particles_table(path, scan_loop_tables(path))
    new = [f"{i + 1:06d}@out/phases.mrcs" for i in range(particles.n_rows)]
    out = tmp_path / "new.star"
    rewrite_loop_column(path, out, particles, "rlnImageName", iter(new))
    before, after = starfile.read(path, always_dict=True), starfile.read(out, always_dict=True)
    assert list(before) == list(after)
    for key, table in before.items():
        if not isinstance(table, pd.DataFrame):
            continue
        if "rlnImageName" in table and key == (particles.block or next(iter(before))):
            assert list(after[key]["rlnImageName"]) == new
            table = table.drop(columns="rlnImageName")
        pd.testing.assert_frame_equal(table, after[key][table.columns])


def test_relion30_with_quotes_comments_and_pixel_size_from_magnification(tmp_path):
    path = tmp_path / "p.star"
    path.write_text(RELION30)
    tables = scan_loop_tables(path)
    assert [(t.block, t.n_rows, len(t.columns)) for t in tables] == [("", 3, 10)]
    some = read_particles_star(path, columns=IMAGING_COLUMNS)
    # RELION 3.0: pixel size = detector pixel (um) / magnification = 14 um / 100000 = 1.4 A
    np.testing.assert_allclose(some.particles["rlnImagePixelSize"], 1.4)
    assert some.image_names.stacks == ["Particles/a.mrcs", "Particles/b.mrcs"]
    np.testing.assert_array_equal(some.image_names.numbers, [1, 2, 1])
    np.testing.assert_array_equal(some.image_names.codes, [0, 0, 1])
    # an overridden pixel size becomes a new last column; quoted values and comments are kept
    out = tmp_path / "out.star"
    rewrite_loop_column(path, out, tables[0], "rlnImageName", iter(["1@x.mrcs", "2@x.mrcs", "3@x.mrcs"]),
                        set_columns={"": {"rlnImagePixelSize": "2.5"}})
    text = out.read_text()
    assert '"mics/with space.mrc"' in text and "# a comment inside the rows" in text
    assert "_rlnImagePixelSize #11" in text
    table = starfile.read(out)
    assert list(table["rlnImageName"]) == ["1@x.mrcs", "2@x.mrcs", "3@x.mrcs"]
    np.testing.assert_allclose(table["rlnImagePixelSize"], 2.5)
    np.testing.assert_allclose(table["rlnDefocusV"], [14000.0, 15500.0, 16500.0])


def test_rows_are_read_across_chunk_boundaries(tmp_path):
    path = tmp_path / "p.star"
    path.write_text(RELION30)
    table = scan_loop_tables(path)[0]
    whole = read_loop_columns(path, table, ["rlnDefocusU", "rlnImageName"])
    chunked = read_loop_columns(path, table, ["rlnDefocusU", "rlnImageName"], chunk_rows=2)
    pd.testing.assert_frame_equal(whole, chunked)
    assert list(whole["rlnDefocusU"]) == [15000.0, 16000.0, 17000.0]


@pytest.mark.parametrize("bad, message", [("x@a.mrcs", "expected index@stack"), ("0@a.mrcs", "indices start at 1")])
def test_bad_image_names_are_refused_with_the_name(tmp_path, bad, message):
    path = tmp_path / "p.star"
    path.write_text(RELION30.replace("000002@Particles/a.mrcs", bad))
    with pytest.raises(StarError, match=message) as info:
        read_particles_star(path, columns=IMAGING_COLUMNS)
    assert bad in str(info.value)
