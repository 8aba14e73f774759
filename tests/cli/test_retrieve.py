"""``cryophase retrieve`` end to end: simulated counts and RELION-normalised stacks, then every real stack."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.conventions import relion_normalise
from cryophase.evaluation import normalised_cross_correlation
from cryophase.io.mrc import read_stack, write_stack
from cryophase.io.particles import read_particle_table
from cryophase.io.star import ParticleImages, write_star
from cryophase.physics import ImagingPhysics, Optics, sample_counts
from stacks import gaussian_blob_phases
from stacks import write_particles as write_stack_and_star

runner = CliRunner()
N_PARTICLES, BOX, PIXEL_A, DOSE = 5, 64, 2.0, 200.0


def blob_phases(n: int, box: int, generator: torch.Generator) -> torch.Tensor:
    """Sums of 5 Gaussian blobs near the box centre, peak ~0.3 rad, (n, box, box) float64."""
    return gaussian_blob_phases(n, box, generator, n_blobs=5, spread_px=5, peak_rad=0.12, width_px=3.0)


def simulated_optics(n: int) -> Optics:
    return Optics.create(defocus_u_angstrom=torch.linspace(12000, 20000, n),
                         defocus_v_angstrom=torch.linspace(11500, 19000, n), defocus_angle_degrees=30.0,
                         voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1, pixel_size_angstrom=PIXEL_A,
                         dtype=torch.float64)


def write_particles(folder: Path, images: torch.Tensor, optics: Optics, name: str, *, dtype=np.float32) -> Path:
    """Write ``images`` as ``name.mrcs`` and a RELION 3.1 STAR file naming them; return the STAR path."""
    return write_stack_and_star(folder, images, optics, name, dtype=dtype,
                                extra_columns={"rlnClassNumber": np.arange(images.shape[0]) + 1})  # must survive


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A tiny simulated data set: truth phases, counts and RELION-normalised (inverted) particles."""
    folder = tmp_path_factory.mktemp("sim")
    generator = torch.Generator().manual_seed(7)
    phase = blob_phases(N_PARTICLES, BOX, generator)
    optics = simulated_optics(N_PARTICLES)
    counts = sample_counts(ImagingPhysics(optics, DOSE).expected_counts(phase), generator)
    write_stack(folder / "truth.mrcs", phase.to(torch.float32), PIXEL_A)
    return {
        "folder": folder,
        "phase": phase,
        "counts_star": write_particles(folder, counts, optics, "counts"),
        "normalised_star": write_particles(folder, relion_normalise(counts, invert=True), optics, "normalised"),
        "float16_star": write_particles(folder, relion_normalise(counts, invert=True), optics, "float16",
                                        dtype=np.float16),
    }


def run(*args: str):
    result = runner.invoke(app, ["retrieve", *map(str, args)])
    return result


def test_retrieve_counts_writes_phases_star_and_provenance(simulated, tmp_path):
    out = tmp_path / "out"
    result = run(simulated["counts_star"], "--method", "wiener", "--out", out, "--batch-size", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "retrieved 5 particles in" in result.output and "particles/s" in result.output
    with mrcfile.open(out / "phases.mrcs", permissive=True) as mrc:
        assert mrc.data.shape == (N_PARTICLES, BOX, BOX)
        assert float(mrc.voxel_size.x) == pytest.approx(PIXEL_A)
        assert np.isfinite(mrc.data).all()
    phases, _ = read_stack(out / "phases.mrcs")
    # Same order as the input: each retrieved phase matches its own truth best.
    ncc = normalised_cross_correlation(simulated["phase"].float()[:, None].expand(-1, N_PARTICLES, -1, -1)
                                       .reshape(-1, BOX, BOX),
                                       phases[None].expand(N_PARTICLES, -1, -1, -1).reshape(-1, BOX, BOX))
    ncc = ncc.reshape(N_PARTICLES, N_PARTICLES)
    assert (ncc.argmax(dim=1) == torch.arange(N_PARTICLES)).all()
    assert ncc.diagonal().min() > 0.5
    # The STAR file keeps every column and points into phases.mrcs, in order.
    table = read_particle_table(out / "phases.star")
    assert "rlnClassNumber" in table.particles and table.optics is not None
    assert list(table.particles["rlnClassNumber"]) == [1, 2, 3, 4, 5]
    with ParticleImages(table) as images:
        assert images.path_of(0).resolve() == (out / "phases.mrcs").resolve()
        torch.testing.assert_close(images.read(slice(None)), phases)
    record = json.loads((out / "retrieve.json").read_text())
    assert record["method"] == "wiener" and record["n_particles"] == N_PARTICLES
    assert record["input_convention"]["normalised"] is False
    assert record["settings"]["batch_size"] == 2


def test_retrieve_then_evaluate_against_the_truth(simulated, tmp_path):
    out = tmp_path / "out"
    assert run(simulated["counts_star"], "--method", "wiener", "--out", out).exit_code == 0
    result = runner.invoke(app, ["evaluate", "--truth", str(simulated["folder"] / "truth.mrcs"), "--pred",
                                 str(out / "phases.mrcs"), "--out", str(out / "eval")])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "eval" / "metrics.json").read_text())
    assert table["n_images"] == N_PARTICLES and table["pixel_size_angstrom"] == PIXEL_A
    # 200 e/A^2 on smooth blobs: the Wiener estimate correlates at > 0.9 with the truth, and the
    # image-averaged FRC stays above 0.5 to better than 20 A.
    assert table["mean"]["ncc"] > 0.9
    assert table["mean_curve_frc_angstrom"]["frc_0.5_angstrom"] < 20.0
    assert (out / "eval" / "frc.png").exists()


def test_normalised_input_gives_the_same_phase_as_counts(simulated, tmp_path):
    a, b = tmp_path / "counts", tmp_path / "normalised"
    assert run(simulated["counts_star"], "--method", "wiener", "--out", a).exit_code == 0
    result = run(simulated["normalised_star"], "--method", "wiener", "--out", b, "--dose", DOSE)
    assert result.exit_code == 0, result.output
    assert "detected RELION-normalised" in result.output and "contrast-inverted" in result.output
    from_counts, _ = read_stack(a / "phases.mrcs")
    from_normalised, _ = read_stack(b / "phases.mrcs")
    assert normalised_cross_correlation(from_counts, from_normalised).min() > 0.99
    # RELION sometimes writes float16 particles (MRC mode 12): same result to float16 precision.
    result = run(simulated["float16_star"], "--method", "wiener", "--out", tmp_path / "f16", "--dose", DOSE)
    assert result.exit_code == 0, result.output
    from_float16, _ = read_stack(tmp_path / "f16" / "phases.mrcs")
    assert normalised_cross_correlation(from_counts, from_float16).min() > 0.99
    # Telling it the wrong contrast flips the phase.
    c = tmp_path / "wrong"
    assert run(simulated["normalised_star"], "--method", "wiener", "--out", c, "--dose", DOSE,
               "--not-inverted").exit_code == 0
    flipped, _ = read_stack(c / "phases.mrcs")
    assert normalised_cross_correlation(from_counts, flipped).max() < -0.9


def test_normalised_input_without_dose_is_a_clear_error(simulated, tmp_path):
    result = run(simulated["normalised_star"], "--method", "wiener", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert "RELION-normalised" in result.output and "--dose" in result.output
    assert not (tmp_path / "x" / "phases.mrcs").exists()


def test_existing_results_are_kept_unless_overwrite(simulated, tmp_path):
    out = tmp_path / "out"
    assert run(simulated["counts_star"], "--method", "wiener", "--out", out).exit_code == 0
    before = (out / "phases.mrcs").stat().st_mtime_ns
    result = run(simulated["counts_star"], "--method", "wiener", "--out", out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "phases.mrcs").stat().st_mtime_ns == before
    assert run(simulated["counts_star"], "--method", "wiener", "--out", out, "--overwrite").exit_code == 0


def test_unknown_method_lists_the_choices(simulated, tmp_path):
    result = run(simulated["counts_star"], "--method", "nonsense", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "wiener" in result.output and "nonsense" in result.output


def test_sampling_flags_are_refused_for_methods_that_do_not_sample(simulated, tmp_path):
    # The sampling methods are found from the methods' options, not from a list of names.
    result = run(simulated["counts_star"], "--method", "wiener", "--steps", "5", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "--steps" in result.output
    assert "ldm" in result.output and "pixel-diffusion" in result.output and "wiener" in result.output
    assert not (tmp_path / "o").exists()


def test_method_options_reach_the_method(simulated, tmp_path):
    smooth, sharp = tmp_path / "smooth", tmp_path / "sharp"
    assert run(simulated["counts_star"], "--method", "wiener", "--out", smooth, "--option", "ssnr=0.01").exit_code == 0
    assert run(simulated["counts_star"], "--method", "wiener", "--out", sharp, "--option", "ssnr=100").exit_code == 0
    a, _ = read_stack(smooth / "phases.mrcs")
    b, _ = read_stack(sharp / "phases.mrcs")
    assert not torch.allclose(a, b)
    assert json.loads((sharp / "retrieve.json").read_text())["method_options"] == {"ssnr": 100}
    result = run(simulated["counts_star"], "--method", "wiener", "--out", tmp_path / "x", "--option", "bogus=1")
    assert result.exit_code == 2 and "does not take option(s) bogus" in result.output
    result = run(simulated["counts_star"], "--method", "wiener", "--out", tmp_path / "x", "--option", "ssnr")
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_cs_input_becomes_a_relion31_star_with_optics_groups(simulated, tmp_path):
    import starfile

    folder = simulated["folder"]
    table = read_particle_table(simulated["counts_star"])
    dtype = [("uid", "<u8"), ("blob/path", "S20"), ("blob/idx", "<u4"), ("blob/psize_A", "<f4"),
             ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"),
             ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4")]
    cs = np.zeros(N_PARTICLES, dtype=dtype)
    cs["uid"] = np.arange(N_PARTICLES)
    cs["blob/path"] = b"counts.mrcs"
    cs["blob/idx"] = np.arange(N_PARTICLES)
    cs["blob/psize_A"] = PIXEL_A
    cs["ctf/accel_kv"] = [300, 300, 200, 200, 300]
    cs["ctf/cs_mm"] = 2.7
    cs["ctf/amp_contrast"] = 0.1
    cs["ctf/df1_A"] = table.particles["rlnDefocusU"]
    cs["ctf/df2_A"] = table.particles["rlnDefocusV"]
    cs["ctf/df_angle_rad"] = np.radians(table.particles["rlnDefocusAngle"])
    with open(folder / "counts.cs", "wb") as fh:
        np.save(fh, cs)
    out = tmp_path / "out"
    result = run(folder / "counts.cs", "--method", "wiener", "--out", out)
    assert result.exit_code == 0, result.output
    blocks = starfile.read(out / "phases.star", always_dict=True)
    assert list(blocks["optics"]["rlnVoltage"]) == [300.0, 200.0]
    assert list(blocks["particles"]["rlnOpticsGroup"]) == [1, 1, 2, 2, 1]
    back = read_particle_table(out / "phases.star")
    np.testing.assert_allclose(back.particles["rlnVoltage"], [300, 300, 200, 200, 300])
    np.testing.assert_allclose(back.particles["rlnDefocusAngle"], table.particles["rlnDefocusAngle"], rtol=1e-5)


def test_defocus_in_micrometres_is_refused_unless_forced(simulated, tmp_path):
    star = simulated["counts_star"]
    table = read_particle_table(star)
    columns = ["rlnImageName", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnOpticsGroup"]
    particles = table.particles[columns].copy()
    particles["rlnImageName"] = [f"{i + 1:06d}@{star.parent / 'counts.mrcs'}" for i in range(len(particles))]
    particles[["rlnDefocusU", "rlnDefocusV"]] /= 1e4
    micrometres = tmp_path / "um.star"
    write_star(micrometres, {"optics": table.optics, "particles": particles})
    result = run(micrometres, "--method", "wiener", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "micrometres" in result.output
    assert run(micrometres, "--method", "wiener", "--out", tmp_path / "o", "--force").exit_code == 0


def test_pixel_size_override_reaches_header_and_star(simulated, tmp_path):
    out = tmp_path / "out"
    assert run(simulated["counts_star"], "--method", "wiener", "--out", out, "--pixel-size", 2.5).exit_code == 0
    with mrcfile.open(out / "phases.mrcs", permissive=True) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(2.5)
    assert float(read_particle_table(out / "phases.star").particles["rlnImagePixelSize"].iloc[0]) == 2.5


REAL_STACKS = [
    ("relion31/relion31.star", None),
    ("trpv1/trpv1_small_stack.star", "trpv1/trpv1_small_stack.mrcs"),
    ("empiar10076/empiar_10076_7.star", None),
    ("empiar10076/empiar_10076_7.cs", None),
    ("aspire_sample/sample_particles_relion30.star", None),
    ("aspire_sample/sample_particles_relion31.star", None),
    # cryo-ET sub-tilts: 219 particles named 000001@..., pixel size from magnification (10000 x, 1.96 um)
    ("cryoet_subtilts/sta_testing_bin8.star", None),
]


@pytest.mark.parametrize("metadata, stack", REAL_STACKS, ids=[m for m, _ in REAL_STACKS])
def test_real_stacks_retrieve_to_finite_phases(shared_data, tmp_path, metadata, stack):
    # Wiener for all; phase-flip (a different code path through the same reader) for the small trpv1 stack.
    method = "phase-flip" if "trpv1" in metadata else "wiener"
    real = shared_data / "real_particles"
    args = [real / metadata, "--method", method, "--out", tmp_path / "out", "--dose", 40]
    if stack is not None:
        args += ["--stack", real / stack]
    result = run(*args)
    assert result.exit_code == 0, result.output
    source = read_particle_table(real / metadata, stack=real / stack if stack else None)
    with ParticleImages(source) as images:
        n, shape = len(images), images.image_shape
    with mrcfile.open(tmp_path / "out" / "phases.mrcs", permissive=True) as mrc:
        assert mrc.data.shape == (n, *shape)
        assert np.isfinite(mrc.data).all() and mrc.data.std() > 0
        assert float(mrc.voxel_size.x) == pytest.approx(float(source.particles["rlnImagePixelSize"].iloc[0]), rel=1e-4)
    out_table = read_particle_table(tmp_path / "out" / "phases.star")
    assert len(out_table) == n
    np.testing.assert_allclose(out_table.particles["rlnDefocusU"], source.particles["rlnDefocusU"], rtol=1e-6)
