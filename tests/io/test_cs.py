"""cryoSPARC .cs particle files: field mapping, units, and agreement with the same particles' STAR file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryophase.io.cs import cs_to_dataframe, read_particles_cs
from cryophase.io.particles import read_particle_table
from cryophase.io.star import ParticleImages, StarError


def _cs_array(n=3):
    dtype = [("uid", "<u8"), ("blob/path", "S40"), ("blob/idx", "<u4"), ("blob/psize_A", "<f4"),
             ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"),
             ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"), ("ctf/phase_shift_rad", "<f4")]
    a = np.zeros(n, dtype=dtype)
    a["uid"] = np.arange(n) + 100
    a["blob/path"] = b">J3/extract/stack.mrc"
    a["blob/idx"] = np.arange(n)[::-1]
    a["blob/psize_A"] = 1.1
    a["ctf/accel_kv"] = 200
    a["ctf/cs_mm"] = 2.7
    a["ctf/amp_contrast"] = 0.07
    a["ctf/df1_A"] = [10000, 11000, 12000]
    a["ctf/df2_A"] = [9500, 10500, 11500]
    a["ctf/df_angle_rad"] = math.pi / 4
    a["ctf/phase_shift_rad"] = math.pi / 2
    return a


def test_fields_map_to_relion_columns_in_relion_units():
    df = cs_to_dataframe(_cs_array())
    # blob/idx is 0-based, rlnImageName 1-based; cryoSPARC's '>' prefix is dropped.
    assert list(df["rlnImageName"]) == ["000003@J3/extract/stack.mrc", "000002@J3/extract/stack.mrc",
                                        "000001@J3/extract/stack.mrc"]
    np.testing.assert_allclose(df["rlnDefocusAngle"], 45.0, rtol=1e-6)
    np.testing.assert_allclose(df["rlnPhaseShift"], 90.0, rtol=1e-6)
    np.testing.assert_allclose(df["rlnDefocusU"], [10000, 11000, 12000])
    np.testing.assert_allclose(df["rlnVoltage"], 200.0)
    np.testing.assert_allclose(df["rlnImagePixelSize"], 1.1, rtol=1e-6)
    assert list(df["cryosparcUid"]) == ["100", "101", "102"]


def test_missing_fields_and_bad_files_are_clear_errors(tmp_path):
    a = _cs_array()
    with pytest.raises(StarError, match="ctf/df1_A"):
        cs_to_dataframe(a[["uid", "blob/path", "blob/idx", "ctf/accel_kv", "ctf/cs_mm", "ctf/amp_contrast"]])
    bad = tmp_path / "bad.cs"
    bad.write_bytes(b"not numpy at all")
    with pytest.raises(StarError, match="bad.cs: not a readable cryoSPARC"):
        read_particles_cs(bad)
    with pytest.raises(StarError, match="no such file"):
        read_particles_cs(tmp_path / "absent.cs")


def test_cs_file_round_trips_through_numpy(tmp_path):
    path = tmp_path / "p.cs"
    with open(path, "wb") as fh:
        np.save(fh, _cs_array())
    table = read_particle_table(path, pixel_size_angstrom=2.0)
    optics = table.optics_for()
    torch.testing.assert_close(optics.pixel_size_angstrom, torch.full((3,), 2.0))
    torch.testing.assert_close(optics.phase_shift_degrees, torch.full((3,), 90.0))
    torch.testing.assert_close(optics.defocus_angle_degrees, torch.full((3,), 45.0))


def test_empiar10076_cs_agrees_with_its_star_twin(shared_data):
    folder = shared_data / "real_particles" / "empiar10076"
    from_cs = read_particle_table(folder / "empiar_10076_7.cs")
    from_star = read_particle_table(folder / "empiar_10076_7.star")
    a, b = from_cs.optics_for(dtype=torch.float64), from_star.optics_for(dtype=torch.float64)
    # The .cs stores float32; the STAR's 1.31 A/px comes from 5 um / 38168 = 1.30999 A.
    for name in ("voltage_kv", "cs_mm", "amplitude_contrast", "pixel_size_angstrom", "defocus_u_angstrom",
                 "defocus_v_angstrom", "defocus_angle_degrees", "phase_shift_degrees"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-3, msg=name)
    with ParticleImages(from_cs) as images_cs, ParticleImages(from_star) as images_star:
        torch.testing.assert_close(images_cs.read(slice(None)), images_star.read(slice(None)))


def test_cubic_stack_named_mrc_is_read_as_the_particle_stack_its_metadata_names(tmp_path):
    # cryoSPARC writes particle stacks as .mrc; one holding as many particles as the box is wide is cubic.
    from cryophase.io.mrc import write_stack

    images = torch.arange(8 * 8 * 8, dtype=torch.float32).reshape(8, 8, 8)
    write_stack(tmp_path / "stack.mrc", images, 1.0)
    a = _cs_array()
    a["blob/path"] = b"stack.mrc"
    a["blob/idx"] = [5, 0, 7]
    with open(tmp_path / "p.cs", "wb") as fh:
        np.save(fh, a)
    with ParticleImages(read_particle_table(tmp_path / "p.cs")) as stack:
        torch.testing.assert_close(stack.read(slice(None)), images[[5, 0, 7]])
