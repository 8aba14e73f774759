"""``cryophase retrieve`` on bad inputs: one-line error naming the file and the problem, exit 2, no output.

Each case breaks a copy of a 4-particle simulated data set (32 px) and returns the extra arguments and the
phrases the error line must hold. The output folder's files (hidden partial files included) must be unchanged.
"""

from __future__ import annotations

import numpy as np
import mrcfile
import pytest

from robust_inputs import (assert_user_error, can_be_made_unreadable, invoke, read_star, snapshot,
                      write_star_blocks)


def _edit_particles(sim, column, value):
    blocks = read_star(sim / "particles.star")
    blocks["particles"][column] = value
    write_star_blocks(sim / "particles.star", blocks)


def _edit_optics(sim, column, value):
    blocks = read_star(sim / "particles.star")
    blocks["optics"][column] = value
    write_star_blocks(sim / "particles.star", blocks)


def _drop(sim, block, column):
    blocks = read_star(sim / "particles.star")
    blocks[block] = blocks[block].drop(columns=[column])
    write_star_blocks(sim / "particles.star", blocks)


def _set_pixels(sim, index, value):
    with mrcfile.open(sim / "particles.mrcs", mode="r+") as mrc:
        mrc.data[index, 3, 5] = value


def case_missing_star(sim):
    return [sim / "nothing.star"], ["nothing.star", "no such file"]


def case_unknown_suffix(sim):
    (sim / "particles.txt").write_text("hello\n")
    return [sim / "particles.txt"], ["particles.txt", "unknown particle file type"]


def case_not_a_star_file(sim):
    (sim / "junk.star").write_bytes(b"\x00\x01 this is not STAR \xff" * 100)
    return [sim / "junk.star"], ["junk.star"]


def case_truncated_stack(sim):
    data = (sim / "particles.mrcs").read_bytes()
    (sim / "particles.mrcs").write_bytes(data[: 1024 + 1000])
    return [sim / "particles.star"], ["particles.mrcs", "not a valid"]


def case_stack_smaller_than_header(sim):
    (sim / "particles.mrcs").write_bytes(b"\x00" * 100)
    return [sim / "particles.star"], ["particles.mrcs", "not an MRC file"]


def case_text_file_as_stack(sim):
    (sim / "notes.mrcs").write_text("not an image stack\n" * 200)
    return [sim / "particles.star", "--stack", sim / "notes.mrcs"], ["notes.mrcs", "not a valid"]


def case_missing_stack(sim):
    (sim / "particles.mrcs").unlink()
    return [sim / "particles.star"], ["particles.star", "'particles.mrcs' not found"]


def case_no_particles_table(sim):
    blocks = read_star(sim / "particles.star")
    write_star_blocks(sim / "particles.star", {"optics": blocks["optics"]})
    return [sim / "particles.star"], ["particles.star", "no particles table"]


def case_empty_particles_table(sim):
    blocks = read_star(sim / "particles.star")
    blocks["particles"] = blocks["particles"].iloc[:0]
    write_star_blocks(sim / "particles.star", blocks)
    return [sim / "particles.star"], ["particles.star"]


def case_missing_defocus(sim):
    _drop(sim, "particles", "rlnDefocusU")
    return [sim / "particles.star"], ["particles.star", "rlnDefocusU"]


def case_missing_voltage(sim):
    _drop(sim, "optics", "rlnVoltage")
    return [sim / "particles.star"], ["particles.star", "rlnVoltage"]


def case_missing_amplitude_contrast(sim):
    _drop(sim, "optics", "rlnAmplitudeContrast")
    return [sim / "particles.star"], ["particles.star", "rlnAmplitudeContrast"]


def case_unknown_optics_group(sim):
    _edit_particles(sim, "rlnOpticsGroup", 99)
    return [sim / "particles.star"], ["particles.star", "optics groups [99]"]


def case_index_beyond_stack(sim):
    blocks = read_star(sim / "particles.star")
    names = blocks["particles"]["rlnImageName"].tolist()
    names[-1] = names[-1].replace("000004@", "000099@")
    blocks["particles"]["rlnImageName"] = names
    write_star_blocks(sim / "particles.star", blocks)
    return [sim / "particles.star"], ["particles.star", "image index 99", "beyond the end"]


def case_nan_pixel(sim):
    _set_pixels(sim, 2, np.nan)
    return [sim / "particles.star"], ["particles.mrcs", "particle 3", "NaN or infinite"]


def case_inf_pixel(sim):
    _set_pixels(sim, 1, np.inf)
    return [sim / "particles.star"], ["particles.mrcs", "particle 2", "NaN or infinite"]


def case_zero_dose_flag(sim):
    return [sim / "particles.star", "--dose", "0"], ["--dose", "positive"]


def case_negative_dose_flag(sim):
    return [sim / "particles.star", "--dose", "-5"], ["--dose", "positive"]


def case_zero_pixel_size_flag(sim):
    return [sim / "particles.star", "--pixel-size", "0"], ["--pixel-size", "positive"]


def case_negative_pixel_size_flag(sim):
    return [sim / "particles.star", "--pixel-size", "-1.5"], ["--pixel-size", "positive"]


def case_zero_pixel_size_in_star(sim):
    _edit_optics(sim, "rlnImagePixelSize", 0.0)
    return [sim / "particles.star"], ["particles.star", "rlnImagePixelSize", "positive"]


def case_negative_voltage_in_star(sim):
    _edit_optics(sim, "rlnVoltage", -300.0)
    return [sim / "particles.star"], ["particles.star", "rlnVoltage", "positive"]


def case_zero_voltage_in_star(sim):
    _edit_optics(sim, "rlnVoltage", 0.0)
    return [sim / "particles.star"], ["particles.star", "rlnVoltage", "positive"]


def case_defocus_in_micrometres(sim):
    blocks = read_star(sim / "particles.star")
    blocks["particles"]["rlnDefocusU"] = blocks["particles"]["rlnDefocusU"] / 1e4
    blocks["particles"]["rlnDefocusV"] = blocks["particles"]["rlnDefocusV"] / 1e4
    write_star_blocks(sim / "particles.star", blocks)
    return [sim / "particles.star"], ["particles.star", "micrometres", "--force"]


def case_unknown_method(sim):
    return [sim / "particles.star", "--method", "magic"], ["unknown method 'magic'"]


CASES = {name[len("case_"):]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_without_output(case, sim, tmp_path):
    args, phrases = CASES[case](sim)
    out = tmp_path / "out"
    before = snapshot(out)
    method = [] if "--method" in args else ["--method", "wiener"]
    result = invoke(["retrieve", *args, *method, "--out", out, "--device", "cpu"])
    assert_user_error(result, *phrases)
    assert snapshot(out) == before


def test_unreadable_star(sim, tmp_path):
    if not can_be_made_unreadable(sim / "particles.star"):
        pytest.skip("running as root: chmod 000 does not make a file unreadable for root")
    result = invoke(["retrieve", sim / "particles.star", "--method", "wiener", "--out", tmp_path / "out"])
    assert_user_error(result, "particles.star", "permission denied")
    assert not (tmp_path / "out").exists()


def test_unreadable_stack(sim, tmp_path):
    if not can_be_made_unreadable(sim / "particles.mrcs"):
        pytest.skip("running as root: chmod 000 does not make a file unreadable for root")
    result = invoke(["retrieve", sim / "particles.star", "--method", "wiener", "--out", tmp_path / "out"])
    assert_user_error(result, "particles.mrcs", "permission denied")
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(sim, tmp_path):
    result = invoke(["retrieve", sim / "nothing.star", "--method", "wiener", "--out", tmp_path / "out", "--debug"])
    assert result.exit_code != 0 and result.exception is not None
    assert "nothing.star" in str(result.exception)


def test_existing_results_refused_unless_overwrite(sim, tmp_path):
    out = tmp_path / "out"
    args = ["retrieve", sim / "particles.star", "--method", "wiener", "--out", out, "--device", "cpu"]
    assert invoke(args).exit_code == 0
    before = snapshot(out)
    assert_user_error(invoke(args), str(out), "already holds results", "--overwrite")
    assert snapshot(out) == before
    again = invoke([*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    assert (out / "phases.mrcs").read_bytes() == (out / "phases.mrcs").read_bytes()


def test_micrometre_defocus_runs_with_force(sim, tmp_path):
    case_defocus_in_micrometres(sim)
    result = invoke(["retrieve", sim / "particles.star", "--method", "wiener", "--out", tmp_path / "out",
                     "--device", "cpu", "--force"])
    assert result.exit_code == 0, result.output
