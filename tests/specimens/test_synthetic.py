import math

import pytest
import torch

from cryophase.conventions import PROTEIN_DENSITY_DA_PER_A3
from cryophase.errors import CryophaseError
from cryophase.specimens import Specimen
from cryophase.specimens.rotations import uniform_rotations
from cryophase.specimens.synthetic import (
    MEAN_RESIDUE_MASS_DA,
    SyntheticProteinConfig,
    random_synthetic_protein,
)


def test_mean_residue_mass_is_that_of_proteins():
    # the average residue mass of natural proteins is about 110-111 Da
    assert 109.0 < MEAN_RESIDUE_MASS_DA < 112.0


@pytest.mark.parametrize("mass_kda", [12.0, 60.0])
def test_requested_mass_composition_and_packing(mass_kda):
    config = SyntheticProteinConfig(oligomer_probability=0.0)
    model = random_synthetic_protein(config, torch.Generator().manual_seed(0), mass_kda=mass_kda)
    assert isinstance(model, Specimen)
    assert model.mass_dalton == pytest.approx(mass_kda * 1000, rel=0.03)
    z = model.atomic_numbers
    fractions = {name: float((z == number).double().mean()) for name, number in (("C", 6), ("N", 7), ("O", 8))}
    # heavy-atom composition of proteins: about 63 % C, 17 % N, 19 % O, < 1 % S
    assert fractions["C"] == pytest.approx(0.63, abs=0.03)
    assert fractions["N"] == pytest.approx(0.17, abs=0.03)
    assert fractions["O"] == pytest.approx(0.19, abs=0.03)
    assert 0 < float((z == 16).double().mean()) < 0.012
    # compact: the radius of gyration of a globular protein is about 2.2 N_res^0.38 A (Skolnick et al. 1997)
    # for the elongated envelopes it is larger; allow 0.8x-1.6x
    n_res = mass_kda * 1000 / MEAN_RESIDUE_MASS_DA
    rg = float(model.positions_angstrom.norm(dim=1).pow(2).mean().sqrt())
    assert 0.8 * 2.2 * n_res**0.38 < rg < 1.6 * 2.2 * n_res**0.38
    # packing: the volume of the particle's occupied voxels matches mass / 0.81 Da/A^3 to 35 %
    grid = 3.0
    cells = torch.unique(torch.floor(model.positions_angstrom / grid).to(torch.int64), dim=0)
    occupied_volume = cells.shape[0] * grid**3
    assert occupied_volume == pytest.approx(model.mass_dalton / PROTEIN_DENSITY_DA_PER_A3, rel=0.35)


def test_packing_like_real_proteins(structures_dir):
    from cryophase.specimens.atoms import AtomicModel

    config = SyntheticProteinConfig(oligomer_probability=0.0)
    synthetic = random_synthetic_protein(config, torch.Generator().manual_seed(1), mass_kda=25.0)
    real = AtomicModel.from_file(structures_dir / "1o1z.pdb")  # 26 kDa
    stats = []
    for model in (synthetic, real):
        d = torch.cdist(model.positions_angstrom, model.positions_angstrom)
        d.fill_diagonal_(math.inf)
        stats.append((float(d.min(dim=1).values.min()), float((d < 6.0).double().sum(dim=1).mean())))
    # no overlapping atoms (closest pair at least ~1 A, a bond is 1.2-1.5 A)
    assert stats[0][0] > 1.0
    # liquid-like packing: heavy-atom neighbours within 6 A within 15 % of the real protein's
    assert stats[0][1] == pytest.approx(stats[1][1], rel=0.15)


def test_symmetric_oligomers():
    config = SyntheticProteinConfig(oligomer_probability=1.0, dihedral_probability=0.0, max_cyclic_order=3)
    model = random_synthetic_protein(config, torch.Generator().manual_seed(2), mass_kda=90.0)
    order = int(model.name.split("_C")[-1])
    assert order in (2, 3)
    # Cn about z through the centroid: rotating by 2 pi / n maps the atom set onto itself
    angle = 2 * math.pi / order
    rot = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0],
                        [0.0, 0.0, 1.0]], dtype=torch.float64)
    rotated = model.positions_angstrom @ rot.T
    nearest = torch.cdist(rotated, model.positions_angstrom).min(dim=1).values
    assert float(nearest.max()) < 1e-6
    dihedral = SyntheticProteinConfig(oligomer_probability=1.0, dihedral_probability=1.0, max_dihedral_order=2)
    d2 = random_synthetic_protein(dihedral, torch.Generator().manual_seed(3), mass_kda=80.0)
    assert d2.name.endswith("D2")
    flipped = d2.positions_angstrom * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    assert float(torch.cdist(flipped, d2.positions_angstrom).min(dim=1).values.max()) < 1e-6


def test_reproducible_and_mass_range():
    config = SyntheticProteinConfig(min_mass_kda=15.0, max_mass_kda=40.0)
    a = random_synthetic_protein(config, torch.Generator().manual_seed(4))
    b = random_synthetic_protein(config, torch.Generator().manual_seed(4))
    assert torch.equal(a.positions_angstrom, b.positions_angstrom)
    masses = [random_synthetic_protein(config, torch.Generator().manual_seed(s)).mass_dalton for s in range(6)]
    assert all(15_000 * 0.97 < m < 40_000 * 1.03 for m in masses)


def test_projects():
    model = random_synthetic_protein(SyntheticProteinConfig(), torch.Generator().manual_seed(5), mass_kda=15.0)
    rotations = uniform_rotations(2, torch.Generator().manual_seed(6), torch.float32)
    projection = model.project(rotations, torch.zeros(2, 2), (32, 32), 2.0)
    assert projection.potential_volt_angstrom.shape == (2, 32, 32)
    assert torch.isfinite(projection.potential_volt_angstrom).all()


def test_bad_config():
    with pytest.raises(CryophaseError, match="min_mass_kda"):
        SyntheticProteinConfig(min_mass_kda=50.0, max_mass_kda=10.0)
