"""MRC and STAR round trips, and the RELION conventions pinned through them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cryophase.io.mrc import MrcStack, MrcStackWriter, read_stack, write_stack
from cryophase.io.star import ParticleImages, optics_table, read_particles_star, write_star
from cryophase.physics import Optics, ctf


def test_mrc_float32_round_trip_keeps_values_and_pixel_size(tmp_path, generator):
    images = torch.randn(5, 12, 16, generator=generator)
    write_stack(tmp_path / "a.mrcs", images, 1.75)
    back, pixel = read_stack(tmp_path / "a.mrcs")
    assert torch.equal(back, images) and pixel == pytest.approx(1.75)


def test_mrc_float16_round_trip_is_float16_exact(tmp_path, generator):
    images = torch.randn(3, 8, 8, generator=generator)
    write_stack(tmp_path / "h.mrcs", images, 2.0, dtype=np.float16)
    with MrcStack(tmp_path / "h.mrcs") as stack:
        assert stack.dtype == np.float16
        back = stack.read(slice(None))
    assert back.dtype == torch.float32
    assert torch.equal(back, images.half().float())


def test_chunked_writer_equals_one_shot_writer(tmp_path, generator):
    images = torch.randn(10, 8, 8, generator=generator)
    writer = MrcStackWriter(tmp_path / "c.mrcs", 10, (8, 8), 3.0)
    for start in range(0, 10, 4):
        writer.write(start, images[start : start + 4])
    writer.finalize()
    back, pixel = read_stack(tmp_path / "c.mrcs")
    assert torch.equal(back, images) and pixel == pytest.approx(3.0)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def _optics():
    return Optics.create(defocus_u_angstrom=[15000.0, 21000.0, 9000.0], defocus_v_angstrom=[14500.0, 21400.0, 9000.0],
                         defocus_angle_degrees=[12.5, -80.0, 0.0], phase_shift_degrees=[0.0, 0.0, 90.0],
                         voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, pixel_size_angstrom=1.25,
                         dtype=torch.float64)


def test_star_31_round_trip_preserves_optics_and_the_ctf(tmp_path, generator):
    optics = _optics()
    write_stack(tmp_path / "p.mrcs", torch.randn(3, 16, 16, generator=generator), 1.25)
    particles = pd.DataFrame({
        "rlnImageName": [f"{i + 1}@p.mrcs" for i in range(3)],
        "rlnDefocusU": optics.defocus_u_angstrom.tolist(),
        "rlnDefocusV": optics.defocus_v_angstrom.tolist(),
        "rlnDefocusAngle": optics.defocus_angle_degrees.tolist(),
        "rlnPhaseShift": optics.phase_shift_degrees.tolist(),
        "rlnOpticsGroup": [1, 1, 1],
        "rlnMyOwnColumn": ["kept", "as", "is"],
    })
    write_star(tmp_path / "p.star", {"optics": optics_table(optics, 16), "particles": particles})
    table = read_particles_star(tmp_path / "p.star")
    assert table.version == "3.1" and len(table) == 3
    back = table.optics_for(dtype=torch.float64)
    for field in ("defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees", "phase_shift_degrees",
                  "voltage_kv", "cs_mm", "amplitude_contrast", "pixel_size_angstrom"):
        torch.testing.assert_close(getattr(back, field), getattr(optics, field), rtol=0, atol=1e-6)
    # the conventions survive the trip: the same CTF, astigmatism angle and phase plate included
    torch.testing.assert_close(ctf(back, (32, 32)), ctf(optics, (32, 32)))
    assert list(table.particles["rlnMyOwnColumn"]) == ["kept", "as", "is"]
    with ParticleImages(table) as images:
        torch.testing.assert_close(images.read([2, 0]), read_stack(tmp_path / "p.mrcs")[0][[2, 0]])


def test_star_30_pixel_size_from_magnification(tmp_path, generator):
    write_stack(tmp_path / "p.mrcs", torch.randn(2, 8, 8, generator=generator), 0.0)
    particles = pd.DataFrame({
        "rlnImageName": ["1@p.mrcs", "2@p.mrcs"], "rlnDefocusU": [15000.0, 16000.0],
        "rlnDefocusV": [15000.0, 16000.0], "rlnDefocusAngle": [0.0, 0.0], "rlnVoltage": [300.0, 300.0],
        "rlnSphericalAberration": [2.7, 2.7], "rlnAmplitudeContrast": [0.1, 0.1],
        "rlnMagnification": [38168.0, 38168.0], "rlnDetectorPixelSize": [5.0, 5.0],
    })
    write_star(tmp_path / "p.star", {"particles": particles})
    table = read_particles_star(tmp_path / "p.star")
    assert table.version == "3.0"
    # RELION 3.0: pixel size = detector pixel (um) * 1e4 / magnification = 1.31 A for EMPIAR-10076's metadata
    assert float(table.optics_for().pixel_size_angstrom[0]) == pytest.approx(5.0e4 / 38168.0, rel=1e-6)


def test_real_relion31_metadata_reads_right(shared_data):
    table = read_particles_star(shared_data / "real_particles" / "relion31" / "relion31.star")
    optics = table.optics_for()
    assert len(table) == 5
    # SOURCES.md: 300 kV, Cs 0.01 mm, amplitude contrast 0.1, 2.806 A/px, DefocusU ~12,500-13,100 A
    assert torch.all(optics.voltage_kv == 300.0)
    assert float(optics.cs_mm[0]) == pytest.approx(0.01)
    assert float(optics.pixel_size_angstrom[0]) == pytest.approx(2.806)
    assert 12000 < float(optics.defocus_u_angstrom.min()) and float(optics.defocus_u_angstrom.max()) < 13500
