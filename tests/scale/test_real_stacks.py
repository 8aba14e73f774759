"""The real stacks in ../shared/data/real_particles, filling what tests/io and tests/cli/test_retrieve leave open:
six optics groups, a float16 copy of a real stack, inverted versus not-inverted input, and the pixel size that
RELION 3.0 files give only as magnification and detector pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.evaluation import normalised_cross_correlation
from cryophase.io.mrc import read_stack, write_stack
from cryophase.io.particles import read_particle_table
from cryophase.io.star import ParticleImages

runner = CliRunner()


def retrieve(*args) -> None:
    result = runner.invoke(app, ["retrieve", *map(str, args), "--method", "wiener", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result


def test_six_optics_groups_give_each_particle_its_own_optics(shared_data, tmp_path):
    star = shared_data / "real_particles" / "relion31" / "relion31.6opticsgroups.star"
    table = read_particle_table(star)
    assert len(table) == 139 and table.optics is not None and len(table.optics) == 6
    # Counts per group as in the file; group 4 has Cs 2.6 mm, groups 2 and 5 have 1.24 A pixels.
    counts = table.particles["rlnOpticsGroup"].value_counts().sort_index()
    assert counts.to_dict() == {1: 48, 2: 29, 3: 5, 4: 7, 5: 26, 6: 24}
    by_group = table.optics.set_index("rlnOpticsGroup")
    optics = table.optics_for(dtype=torch.float64)
    groups = table.particles["rlnOpticsGroup"].to_numpy()
    np.testing.assert_array_equal(optics.cs_mm.numpy(), by_group.loc[groups, "rlnSphericalAberration"].to_numpy())
    np.testing.assert_array_equal(optics.pixel_size_angstrom.numpy(),
                                  by_group.loc[groups, "rlnImagePixelSize"].to_numpy())
    np.testing.assert_array_equal(optics.voltage_kv.numpy(), np.full(139, 200.0))
    assert set(optics.cs_mm[groups == 4].tolist()) == {2.6}
    assert set(optics.pixel_size_angstrom[(groups == 2) | (groups == 5)].tolist()) == {1.24}
    np.testing.assert_array_equal(optics.defocus_u_angstrom.numpy(), table.particles["rlnDefocusU"].to_numpy())
    # Its stacks (Polish/job.../..._shiny.mrcs) are not shipped: retrieving names the missing stack.
    result = runner.invoke(app, ["retrieve", str(star), "--method", "wiener", "--out", str(tmp_path / "o"),
                                 "--dose", "30"])
    assert result.exit_code == 2 and "not found" in result.output and "_shiny.mrcs" in result.output


@pytest.mark.parametrize("metadata, expected_angstrom", [
    # SOURCES.md: 5 um detector pixels at magnification 37369.2 and 38168.
    ("aspire_sample/sample_particles_relion30.star", 1.338),
    ("empiar10076/empiar_10076_7.star", 1.31),
])
def test_pixel_size_from_magnification_reaches_the_output(shared_data, tmp_path, metadata, expected_angstrom):
    table = read_particle_table(shared_data / "real_particles" / metadata)
    pixel = table.particles["rlnImagePixelSize"].to_numpy()
    np.testing.assert_allclose(pixel, 5.0 * 1e4 / table.particles["rlnMagnification"].to_numpy())
    np.testing.assert_allclose(pixel, expected_angstrom, atol=5e-4)
    retrieve(shared_data / "real_particles" / metadata, "--out", tmp_path / "o", "--dose", 30)
    _, header_pixel = read_stack(tmp_path / "o" / "phases.mrcs")
    assert header_pixel == pytest.approx(expected_angstrom, abs=5e-4)
    assert read_particle_table(tmp_path / "o" / "phases.star").particles["rlnImagePixelSize"].iloc[0] == \
        pytest.approx(expected_angstrom, abs=5e-4)


def _copy_stack(star, folder, transform, dtype=np.float32):
    """The images of ``star`` through ``transform``, written as ``folder/copy.mrcs``."""
    table = read_particle_table(star)
    with ParticleImages(table) as images:
        data = images.read(slice(None))
    path = folder / "copy.mrcs"
    write_stack(path, transform(data), float(table.particles["rlnImagePixelSize"].iloc[0]), dtype=dtype)
    return path


def test_float16_copy_of_a_real_stack_gives_the_float32_phases(shared_data, tmp_path):
    star = shared_data / "real_particles" / "aspire_sample" / "sample_particles_relion31.star"
    half = _copy_stack(star, tmp_path, lambda x: x, dtype=np.float16)
    retrieve(star, "--out", tmp_path / "f32", "--dose", 30)
    result = retrieve(star, "--stack", half, "--out", tmp_path / "f16", "--dose", 30)
    assert "detected RELION-normalised" in result.output and "contrast-inverted" in result.output
    a, _ = read_stack(tmp_path / "f32" / "phases.mrcs")
    b, _ = read_stack(tmp_path / "f16" / "phases.mrcs")
    # float16 keeps 11 significant bits (relative error 2^-11 ~ 5e-4 of each pixel).
    assert normalised_cross_correlation(a, b).min() > 0.9999


@pytest.mark.parametrize("metadata, inverted", [("aspire_sample/sample_particles_relion31.star", True),
                                                ("empiar10076/empiar_10076_7.star", False)])
def test_inverting_a_real_stack_is_detected_and_gives_the_same_phases(shared_data, tmp_path, metadata, inverted):
    """The ASPIRE sample is contrast-inverted (protein white), EMPIAR-10076 is not: negating either flips the detection
    and leaves the retrieved phase unchanged (the particles' own contrast, not the file's sign, sets it)."""
    star = shared_data / "real_particles" / metadata
    negated = _copy_stack(star, tmp_path, lambda x: -x)
    words = ("contrast-inverted", "not inverted")
    first = retrieve(star, "--out", tmp_path / "as_is", "--dose", 30)
    second = retrieve(star, "--stack", negated, "--out", tmp_path / "negated", "--dose", 30)
    assert words[0 if inverted else 1] in first.output and words[1 if inverted else 0] in second.output
    a, _ = read_stack(tmp_path / "as_is" / "phases.mrcs")
    b, _ = read_stack(tmp_path / "negated" / "phases.mrcs")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
