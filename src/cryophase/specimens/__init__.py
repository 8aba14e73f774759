"""Where the truth comes from: atomic models, density maps, user phase stacks and synthetic pseudo-proteins."""

from cryophase.specimens.atoms import AtomicModel
from cryophase.specimens.base import Projection, Specimen
from cryophase.specimens.maps import DensityMap, fourier_resample_2d
from cryophase.specimens.phase_stack import read_phase_stack
from cryophase.specimens.registry import load_specimens
from cryophase.specimens.rotations import euler_relion_to_matrix, uniform_rotations
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein

__all__ = [
    "AtomicModel",
    "DensityMap",
    "Projection",
    "Specimen",
    "SyntheticProteinConfig",
    "euler_relion_to_matrix",
    "fourier_resample_2d",
    "load_specimens",
    "random_synthetic_protein",
    "read_phase_stack",
    "uniform_rotations",
]
