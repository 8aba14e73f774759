import math

import mrcfile
import numpy as np
import pytest
import torch

from cryophase.conventions import ICE_MEAN_INNER_POTENTIAL_VOLT
from cryophase.errors import CryophaseError
from cryophase.specimens import Specimen
from cryophase.specimens.maps import (
    PROTEIN_MEAN_INNER_POTENTIAL_VOLT,
    DensityMap,
    fourier_resample_2d,
    otsu_threshold,
)
from cryophase.specimens.phase_stack import read_phase_stack
from cryophase.specimens.rotations import uniform_rotations

VOXEL = 2.0


def _blobs(d: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth volume (z, y, x) of three Gaussian blobs (sigma 2 voxels) at known (x, y, z) voxel offsets."""
    centres = torch.tensor([[4.0, -3.0, 2.0], [-5.0, 1.0, -2.0], [0.0, 5.0, 4.0]], dtype=torch.float64)
    index = torch.arange(d, dtype=torch.float64) - d // 2
    z, y, x = torch.meshgrid(index, index, index, indexing="ij")
    volume = sum(torch.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 8.0) for c in centres)
    return volume, centres


def _write_map(path, volume: torch.Tensor, voxel: float) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(volume.numpy().astype(np.float32))
        mrc.voxel_size = voxel


def test_protein_mean_inner_potential():
    # isolated-atom (Peng 1996) potential of average protein at 0.81 Da/A^3; measured values are ~10 % lower
    assert 7.0 < PROTEIN_MEAN_INNER_POTENTIAL_VOLT < 8.5


def test_unrotated_projection_is_sum_over_z(tmp_path):
    volume, _ = _blobs()
    path = tmp_path / "blobs.mrc"
    _write_map(path, volume, VOXEL)
    density = DensityMap.from_file(path, potential_scale=3.0)
    assert isinstance(density, Specimen)
    d = volume.shape[0]
    projection = density.project(torch.eye(3, dtype=torch.float64)[None], torch.zeros(1, 2, dtype=torch.float64),
                                 (d, d), VOXEL)
    expected = 3.0 * volume.float().double().sum(dim=0) * VOXEL
    torch.testing.assert_close(projection.potential_volt_angstrom[0], expected, rtol=0,
                               atol=1e-4 * float(expected.max()))
    assert float(projection.excluded_thickness_angstrom.abs().max()) == 0.0


def test_rotation_moves_blobs_like_atoms(tmp_path):
    # a blob at specimen position c appears at microscope position R c (the Specimen convention)
    volume, centres = _blobs()
    density = DensityMap("blobs", volume, VOXEL)
    rotation = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)  # x -> y
    image = density.project(rotation, torch.zeros(1, 2, dtype=torch.float64), (32, 32), VOXEL)
    image = image.potential_volt_angstrom[0]
    moved = centres @ rotation[0].T
    for c in moved:
        value = image[16 + int(c[1]), 16 + int(c[0])]
        assert value > 0.8 * float(image.max())


def test_integral_is_rotation_invariant_and_rescaled(tmp_path):
    volume, _ = _blobs()
    density = DensityMap("blobs", volume, VOXEL)
    rotations = uniform_rotations(4, torch.Generator().manual_seed(0), torch.float64)
    pixel = 1.3
    images = density.project(rotations, torch.zeros(4, 2, dtype=torch.float64), (56, 56), pixel)
    integral = images.potential_volt_angstrom.sum(dim=(1, 2)) * pixel**2
    expected = float(volume.sum()) * VOXEL**3
    torch.testing.assert_close(integral, torch.full((4,), expected, dtype=torch.float64), rtol=0.01, atol=0)


def test_auto_scale_gives_protein_contrast(tmp_path):
    volume, _ = _blobs()
    density = DensityMap("blobs", volume, VOXEL)
    path = tmp_path / "blobs.mrc"
    _write_map(path, volume * 123.0, VOXEL)
    scaled = DensityMap.from_file(path, threshold=0.5 * 123.0)
    inside = scaled.volume_volt[density.volume_volt > 0.5]
    assert float(inside.mean()) == pytest.approx(PROTEIN_MEAN_INNER_POTENTIAL_VOLT - ICE_MEAN_INNER_POTENTIAL_VOLT,
                                                 rel=1e-3)


def test_otsu_separates_two_populations():
    g = torch.Generator().manual_seed(0)
    values = torch.cat([torch.randn(5000, generator=g), 10 + torch.randn(1000, generator=g)])
    assert 3.0 < otsu_threshold(values) < 7.0


def test_real_maps(maps_dir):
    trpv1 = DensityMap.from_file(maps_dir / "cryojax" / "trpv1_volume.mrc")
    assert trpv1.voxel_size_angstrom == pytest.approx(4.88, rel=1e-4)
    assert trpv1.volume_volt.shape == (48, 48, 48)
    with pytest.raises(CryophaseError, match="voxel size is 0"):
        DensityMap.from_file(maps_dir / "aspire" / "clean70SRibosome_vol_65p.mrc")
    ribosome = DensityMap.from_file(maps_dir / "aspire" / "clean70SRibosome_vol_65p.mrc", voxel_size_angstrom=3.0)
    assert ribosome.volume_volt.shape == (65, 65, 65)
    # non-cubic map: padded to a cube
    emd = DensityMap.from_file(maps_dir / "mrcfile_emdb" / "EMD-3001.map")
    assert emd.volume_volt.shape == (73, 73, 73)


def test_map_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mrc"):
        DensityMap.from_file(tmp_path / "missing.mrc")
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"not an mrc" * 200)
    with pytest.raises(CryophaseError, match="bad.mrc"):
        DensityMap.from_file(bad)


def test_fourier_resample_round_trip_and_shift():
    volume, _ = _blobs()
    image = volume.sum(dim=0)[None]  # smooth (32, 32) at 2 A
    up = fourier_resample_2d(image, 2.0, 0.7, (92, 92))
    down = fourier_resample_2d(up, 0.7, 2.0, (32, 32))
    torch.testing.assert_close(down, image, rtol=0, atol=1e-6 * float(image.max()))
    # a sub-pixel shift is a translation of the band-limited interpolant: integral kept, centroid moved
    shift = torch.tensor([[1.3, -0.6]], dtype=torch.float64)
    moved = fourier_resample_2d(image, 2.0, 2.0, (32, 32), shift)
    torch.testing.assert_close(moved.sum(), image.sum(), rtol=1e-6, atol=0)
    grid = (torch.arange(32, dtype=torch.float64) - 16) * 2.0

    def centroid(im):
        return torch.stack([(im.sum(2) * grid).sum() / im.sum(), (im.sum(1) * grid).sum() / im.sum()])

    torch.testing.assert_close(centroid(moved) - centroid(image), shift[0], atol=1e-4, rtol=0)


def test_read_phase_stack(tmp_path):
    volume, _ = _blobs()
    phase = volume[10:13] * 0.1  # three smooth (32, 32) phase images at 2 A
    path = tmp_path / "phase.mrcs"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(phase.numpy().astype(np.float32))
        mrc.voxel_size = 2.0
    out = read_phase_stack(path, (40, 40), 1.6)
    assert out.shape == (3, 40, 40) and out.dtype == torch.float32
    # same integral of phase over the plane at the new pixel size
    torch.testing.assert_close(out.double().sum(dim=(1, 2)) * 1.6**2, phase.sum(dim=(1, 2)) * 4.0, rtol=1e-3, atol=0)
    with mrcfile.new(tmp_path / "nopix.mrcs", overwrite=True) as mrc:
        mrc.set_data(phase.numpy().astype(np.float32))
    with pytest.raises(CryophaseError, match="source_pixel_size_angstrom"):
        read_phase_stack(tmp_path / "nopix.mrcs", (40, 40), 1.6)
    same = read_phase_stack(tmp_path / "nopix.mrcs", (32, 32), 2.0, source_pixel_size_angstrom=2.0)
    torch.testing.assert_close(same.double(), phase, rtol=0, atol=1e-5)
    assert math.isfinite(float(same.sum()))
