import math

import gemmi
import pytest
import torch

from cryophase.conventions import (
    POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2,
    PROTEIN_DENSITY_DA_PER_A3,
    interaction_constant_rad_per_volt_angstrom,
)
from cryophase.errors import CryophaseError
from cryophase.specimens import Specimen
from cryophase.specimens.atoms import IMPLICIT_HYDROGENS_PER_ATOM, AtomicModel
from cryophase.specimens.rotations import uniform_rotations
from cryophase.specimens.synthetic import AMINO_ACID_FREQUENCY, RESIDUE_FORMULA


def _random_model(n_atoms: int, seed: int, radius: float = 12.0) -> AtomicModel:
    g = torch.Generator().manual_seed(seed)
    positions = (torch.rand(n_atoms, 3, generator=g, dtype=torch.float64) - 0.5) * 2 * radius
    numbers = torch.tensor([6, 7, 8, 16])[torch.randint(0, 4, (n_atoms,), generator=g)]
    return AtomicModel("random", positions, numbers)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_phase_integral_is_rotation_invariant_and_matches_scattering_factors(dtype):
    model = _random_model(300, seed=0)
    g = torch.Generator().manual_seed(1)
    rotations = uniform_rotations(5, g, dtype)
    pixel = 1.3
    proj = model.project(rotations, torch.zeros(5, 2, dtype=dtype), (72, 72), pixel)
    assert proj.potential_volt_angstrom.dtype == dtype
    sigma = float(interaction_constant_rad_per_volt_angstrom(300.0))
    phase_integral = sigma * proj.potential_volt_angstrom.sum(dim=(1, 2)).double() * pixel**2
    expected = sigma * POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2 * model.total_scattering_factor_angstrom()
    torch.testing.assert_close(phase_integral, torch.full((5,), expected, dtype=torch.float64), rtol=0.01, atol=0)
    thickness_integral = proj.excluded_thickness_angstrom.sum(dim=(1, 2)).double() * pixel**2
    expected_volume = model.mass_dalton / PROTEIN_DENSITY_DA_PER_A3
    torch.testing.assert_close(thickness_integral, torch.full((5,), expected_volume, dtype=torch.float64),
                               rtol=0.01, atol=0)


def test_sum_of_scattering_factors_uses_peng_table():
    # Peng et al. (1996): f_e(0) of carbon = sum of a_i = 0.0893 + 0.2563 + 0.7570 + 1.0487 + 0.3575 = 2.5088 A
    model = AtomicModel("c", torch.zeros(1, 3), torch.tensor([6]), implicit_hydrogens=False)
    assert model.total_scattering_factor_angstrom() == pytest.approx(2.5088, rel=1e-5)
    with_h = AtomicModel("c", torch.zeros(1, 3), torch.tensor([6]))
    assert with_h.total_scattering_factor_angstrom() == pytest.approx(2.5088 + 1.2 * 0.5288, rel=1e-4)


def _direct_fourier_sum_error(oversampling: int, band_fraction: float) -> float:
    """Relative spectral error against the band-limited projection computed by a direct (non-uniform) Fourier sum
    over the atoms, in frequencies below ``band_fraction`` of Nyquist."""
    model = _random_model(40, seed=3, radius=8.0)
    model.oversampling = oversampling
    pixel, shape = 1.0, (48, 48)
    rotation = uniform_rotations(1, torch.Generator().manual_seed(4), torch.float64)
    shift = torch.tensor([[1.7, -2.3]], dtype=torch.float64)
    b_factor = 20.0
    image = model.project(rotation, shift, shape, pixel, b_factor_a2=b_factor).potential_volt_angstrom[0]

    xy = model.positions_angstrom @ rotation[0, :2].T  # (N, 2) x, y
    qy = torch.fft.fftfreq(shape[0], d=pixel, dtype=torch.float64)
    qx = torch.fft.fftfreq(shape[1], d=pixel, dtype=torch.float64)
    q2 = qy[:, None] ** 2 + qx[None, :] ** 2
    groups = model.scattering_groups()
    form = (groups.form_factor_a[:, :, None, None] * torch.exp(-groups.form_factor_b[:, :, None, None] * q2 / 4)).sum(1)
    form = form[groups.group_of_atom] * torch.exp(-b_factor * q2 / 4)  # (N, H, W)
    y = xy[:, 1] + shift[0, 0] + (shape[0] // 2) * pixel
    x = xy[:, 0] + shift[0, 1] + (shape[1] // 2) * pixel
    phase = torch.exp(-2j * math.pi * (qy[None, :, None] * y[:, None, None] + qx[None, None, :] * x[:, None, None]))
    reference = POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2 * (form * phase).sum(0) / pixel**2
    band = q2.sqrt() < band_fraction * 0.5 / pixel
    return float((torch.fft.fft2(image) - reference)[band].norm() / reference[band].norm())


def test_projection_matches_direct_fourier_sum():
    # cloud-in-cell aliasing: < 1 % below half Nyquist with the default 2x oversampling, < 3 % up to Nyquist,
    # and it shrinks with finer deposit grids
    assert _direct_fourier_sum_error(2, 0.5) < 0.01
    assert _direct_fourier_sum_error(2, 0.99) < 0.03
    assert _direct_fourier_sum_error(4, 0.99) < 0.01


def test_batched_equals_looped():
    model = _random_model(200, seed=5)
    g = torch.Generator().manual_seed(6)
    rotations = uniform_rotations(4, g, torch.float64)
    shifts = torch.randn(4, 2, generator=g, dtype=torch.float64) * 3
    b_factors = torch.tensor([0.0, 10.0, 50.0, 100.0], dtype=torch.float64)
    batched = model.project(rotations, shifts, (40, 48), 1.7, b_factor_a2=b_factors)
    for i in range(4):
        single = model.project(rotations[i:i + 1], shifts[i:i + 1], (40, 48), 1.7, b_factor_a2=float(b_factors[i]))
        torch.testing.assert_close(batched.potential_volt_angstrom[i], single.potential_volt_angstrom[0])
        torch.testing.assert_close(batched.excluded_thickness_angstrom[i], single.excluded_thickness_angstrom[0])


def test_whole_pixel_shift_is_a_roll():
    model = _random_model(100, seed=7, radius=6.0)
    rotation = uniform_rotations(1, torch.Generator().manual_seed(8), torch.float64)
    pixel = 1.5
    centred = model.project(rotation, torch.zeros(1, 2, dtype=torch.float64), (64, 64), pixel)
    shifted = model.project(rotation, torch.tensor([[3 * pixel, -5 * pixel]], dtype=torch.float64), (64, 64), pixel)
    rolled = torch.roll(centred.potential_volt_angstrom, shifts=(3, -5), dims=(1, 2))
    # exact away from the borders, where torch.roll wraps around and the projection does not
    interior = (slice(None), slice(8, -8), slice(8, -8))
    torch.testing.assert_close(shifted.potential_volt_angstrom[interior], rolled[interior],
                               atol=1e-9 * float(rolled.max()), rtol=0)


def test_b_factor_keeps_integral_and_lowers_peak():
    model = _random_model(100, seed=9)
    rotation = torch.eye(3, dtype=torch.float64)[None]
    sharp = model.project(rotation, torch.zeros(1, 2, dtype=torch.float64), (64, 64), 1.0)
    blurred = model.project(rotation, torch.zeros(1, 2, dtype=torch.float64), (64, 64), 1.0, b_factor_a2=200.0)
    # the integral is the DC term, untouched by the B-factor (up to the tails blurred out of the 64 A box)
    torch.testing.assert_close(sharp.potential_volt_angstrom.sum(), blurred.potential_volt_angstrom.sum(), rtol=1e-3,
                               atol=0)
    assert blurred.potential_volt_angstrom.max() < 0.7 * sharp.potential_volt_angstrom.max()


def test_implicit_hydrogens_match_average_residue():
    # The per-element hydrogen counts reproduce the exact hydrogen count of the average residue (amino-acid
    # residue formulas weighted by their UniProt frequencies) to 3 %.
    total = sum(AMINO_ACID_FREQUENCY.values())
    average = {el: sum(AMINO_ACID_FREQUENCY[aa] * RESIDUE_FORMULA[aa].get(el, 0) for aa in AMINO_ACID_FREQUENCY) / total
               for el in ("C", "N", "O", "S", "H")}
    implicit = sum(IMPLICIT_HYDROGENS_PER_ATOM[el] * average[el] for el in ("C", "N", "O", "S"))
    assert implicit == pytest.approx(average["H"], rel=0.03)


def test_reads_real_structures(structures_dir):
    lysozyme = AtomicModel.from_file(structures_dir / "1aki.pdb")
    assert isinstance(lysozyme, Specimen)
    # hen egg-white lysozyme: 129 residues, 1001 non-hydrogen atoms, 14.3 kDa
    assert lysozyme.num_atoms == 1001
    assert lysozyme.mass_dalton == pytest.approx(14_300, rel=0.02)
    torch.testing.assert_close(lysozyme.positions_angstrom.mean(0), torch.zeros(3, dtype=torch.float64),
                               atol=1e-9, rtol=0)
    # Trp-cage NMR ensemble (38 models): the first model only, 20 residues with explicit hydrogens (304 atoms)
    trp_cage = AtomicModel.from_file(structures_dir / "1l2y.pdb")
    assert trp_cage.num_atoms == 304
    assert trp_cage.has_explicit_hydrogens
    assert float(trp_cage.implicit_hydrogen_counts().sum()) == 0.0
    second = AtomicModel.from_file(structures_dir / "1l2y.pdb", model_index=1)
    assert not torch.equal(second.positions_angstrom, trp_cage.positions_angstrom)
    with pytest.raises(CryophaseError, match="model_index 40"):
        AtomicModel.from_file(structures_dir / "1l2y.pdb", model_index=40)
    # MD model without element column (CHARMM names): elements from atom names, adenylate kinase 214 residues
    adk = AtomicModel.from_file(structures_dir / "adk_open.pdb")
    assert adk.mass_dalton == pytest.approx(23_600, rel=0.06)


def test_waters_and_hetero(structures_dir):
    default = AtomicModel.from_file(structures_dir / "3o5r.pdb")
    with_water = AtomicModel.from_file(structures_dir / "3o5r.pdb", keep_waters=True)
    no_hetero = AtomicModel.from_file(structures_dir / "3o5r.pdb", keep_hetero=False)
    st = gemmi.read_structure(str(structures_dir / "3o5r.pdb"))
    n_water = sum(len(r) for ch in st[0] for r in ch if r.is_water())
    assert with_water.num_atoms == default.num_atoms + n_water
    assert no_hetero.num_atoms <= default.num_atoms


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pdb"):
        AtomicModel.from_file(tmp_path / "nothere.pdb")
    bad = tmp_path / "bad.cif"
    bad.write_text("this is not a structure\n")
    with pytest.raises(CryophaseError, match="bad.cif"):
        AtomicModel.from_file(bad)
