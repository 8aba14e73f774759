"""Random protein-like pseudo-atomic models: the default specimen when the user brings no structure.

A model is built from secondary-structure elements packed in a globular or elongated (ellipsoidal) envelope:

* the envelope is split into domains of about ``domain_residues`` residues (k-means on random points); each domain
  has its own random orientation and fold class: all-alpha (helices on a hexagonal lattice 10 A apart), all-beta
  (sheets of strands 4.8 A apart, sheets 10 A apart) or alpha/beta (alternating helix and sheet layers);
* helices: CA on a helix of radius 2.3 A, rise 1.5 A, 3.6 residues per turn; strands: rise 3.3 A, pleat 0.9 A;
  lattice rods are jittered and tilted so that no domain is a perfect crystal;
* the elements are joined in a snake order by loops (CA-CA ~3.8 A) that bulge out to the surface;
* residue types are drawn with their UniProt frequencies; each residue has backbone N, CA, C, O and its real
  number and elements of side-chain heavy atoms, placed as a short persistent random walk pointing away from the
  element's axis (so the C:N:O:S composition and the mass per residue are those of real proteins);
* atoms of different residues closer than ``min_atom_distance_angstrom`` (2.9 A) are pushed apart for a few
  rounds, so the atoms pack like a liquid as in real proteins instead of clumping like an ideal gas (this sets the
  projections' power at 7-20 A; without it the power there is ~3x that of real proteins);
* some models are Cn or Dn oligomers of identical subunits.

These are pseudo-atomic models for image statistics at 3-50 A, not stereochemically valid structures (bonds
between residues are stretched by the relaxation). The mass is log-uniform between ``min_mass_kda`` and
``max_mass_kda`` and the envelope is sized for 0.81 Da/A^3 (protein packing density, Fischer et al. 2004).
``benchmarks/specimens.py`` compares the power spectra of their projections with those of real PDB entries:
mass-matched, the ratio synthetic / real is within 0.56-1.99 in every band from 1/50 to 1/7 A^-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from cryophase.conventions import PROTEIN_DENSITY_DA_PER_A3
from cryophase.errors import CryophaseError
from cryophase.specimens.atoms import AtomicModel
from cryophase.specimens.rotations import uniform_rotations

#: Amino-acid frequencies in UniProtKB/Swiss-Prot (release 2023, percent).
AMINO_ACID_FREQUENCY = {
    "A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75, "G": 7.07, "H": 2.27, "I": 5.96,
    "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86, "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08, "Y": 2.92, "V": 6.87,
}
#: Elemental formula of each residue in a chain (amino acid minus one water).
RESIDUE_FORMULA = {
    "G": {"C": 2, "H": 3, "N": 1, "O": 1}, "A": {"C": 3, "H": 5, "N": 1, "O": 1},
    "S": {"C": 3, "H": 5, "N": 1, "O": 2}, "C": {"C": 3, "H": 5, "N": 1, "O": 1, "S": 1},
    "V": {"C": 5, "H": 9, "N": 1, "O": 1}, "T": {"C": 4, "H": 7, "N": 1, "O": 2},
    "L": {"C": 6, "H": 11, "N": 1, "O": 1}, "I": {"C": 6, "H": 11, "N": 1, "O": 1},
    "P": {"C": 5, "H": 7, "N": 1, "O": 1}, "N": {"C": 4, "H": 6, "N": 2, "O": 2},
    "D": {"C": 4, "H": 5, "N": 1, "O": 3}, "Q": {"C": 5, "H": 8, "N": 2, "O": 2},
    "E": {"C": 5, "H": 7, "N": 1, "O": 3}, "K": {"C": 6, "H": 12, "N": 2, "O": 1},
    "R": {"C": 6, "H": 12, "N": 4, "O": 1}, "H": {"C": 6, "H": 7, "N": 3, "O": 1},
    "F": {"C": 9, "H": 9, "N": 1, "O": 1}, "Y": {"C": 9, "H": 9, "N": 1, "O": 2},
    "W": {"C": 11, "H": 10, "N": 2, "O": 1}, "M": {"C": 5, "H": 9, "N": 1, "O": 1, "S": 1},
}
_ATOMIC_NUMBER = {"C": 6, "N": 7, "O": 8, "S": 16}
_MASS = {"C": 12.011, "H": 1.008, "N": 14.007, "O": 15.999, "S": 32.06}
_AMINO_ACIDS = tuple(AMINO_ACID_FREQUENCY)
#: Mean mass of a residue (Da) with the frequencies above.
MEAN_RESIDUE_MASS_DA = sum(
    AMINO_ACID_FREQUENCY[a] * sum(_MASS[e] * n for e, n in RESIDUE_FORMULA[a].items()) for a in _AMINO_ACIDS
) / sum(AMINO_ACID_FREQUENCY.values())

HELIX_RISE_ANGSTROM = 1.5
HELIX_RADIUS_ANGSTROM = 2.3
HELIX_TWIST_RADIANS = 2 * math.pi / 3.6
STRAND_RISE_ANGSTROM = 3.3
STRAND_PLEAT_ANGSTROM = 0.9
HELIX_SPACING_ANGSTROM = 10.0
STRAND_SPACING_ANGSTROM = 4.8
SHEET_SPACING_ANGSTROM = 10.0
CA_CA_ANGSTROM = 3.8
BOND_ANGSTROM = 1.4


@dataclass(frozen=True)
class SyntheticProteinConfig:
    """How random synthetic proteins are drawn."""

    min_mass_kda: float = 10.0  # total mass (all subunits), drawn log-uniformly between the two bounds
    max_mass_kda: float = 4000.0  # up to ribosomes (2.5-4.3 MDa): real single-particle targets, not only small ones
    oligomer_probability: float = 0.3  # fraction of models that are symmetric homo-oligomers
    dihedral_probability: float = 0.3  # among oligomers, fraction with Dn (else Cn) symmetry
    max_cyclic_order: int = 7  # Cn with n drawn uniformly in 2..max_cyclic_order
    max_dihedral_order: int = 4  # Dn with n drawn uniformly in 2..max_dihedral_order (2n subunits)
    min_subunit_mass_kda: float = 8.0  # oligomers whose subunits would be lighter are drawn as monomers
    elongated_probability: float = 0.5  # fraction of (sub)units in an elongated envelope
    max_aspect_ratio: float = 3.0  # long / short axis of elongated envelopes (drawn in 1.5..max)
    domain_residues: int = 150  # residues per domain; each domain has its own fold class and orientation
    alpha_probability: float = 0.4  # fold class of a domain: all-alpha ...
    beta_probability: float = 0.25  # ... all-beta, the rest alpha/beta
    rod_jitter_angstrom: float = 1.0  # random displacement of each helix/strand axis from the lattice
    rod_tilt_degrees: float = 12.0  # random tilt of each helix/strand axis
    min_helix_residues: int = 6  # shorter helix segments are dropped
    min_strand_residues: int = 3  # shorter strand segments are dropped
    sidechain_step_angstrom: float = 1.5  # bond length of the side-chain random walk
    sidechain_persistence: float = 1.2  # ratio of outward drift to randomness in the side-chain walk
    min_atom_distance_angstrom: float = 2.9  # atoms of different residues closer than this are pushed apart
    relax_iterations: int = 10  # rounds of pushing apart

    def __post_init__(self) -> None:
        if not 0 < self.min_mass_kda <= self.max_mass_kda:
            raise CryophaseError(f"synthetic protein masses must satisfy 0 < min_mass_kda <= max_mass_kda, got "
                                 f"{self.min_mass_kda} and {self.max_mass_kda}")


def random_synthetic_protein(
    config: SyntheticProteinConfig,
    generator: torch.Generator,
    *,
    mass_kda: float | None = None,
) -> AtomicModel:
    """Draw one random protein-like pseudo-atomic model.

    Parameters
    ----------
    config : SyntheticProteinConfig
    generator : torch.Generator
        CPU generator; the model is a deterministic function of its state.
    mass_kda : float, optional
        Total mass; drawn log-uniformly from the config's range when not given.

    Returns
    -------
    AtomicModel
        Heavy atoms only (implicit hydrogens are added by :class:`AtomicModel`), centred.
    """
    if mass_kda is None:
        lo, hi = math.log(config.min_mass_kda), math.log(config.max_mass_kda)
        mass_kda = math.exp(lo + (hi - lo) * _uniform(generator))
    n_copies, symmetry = _draw_symmetry(config, mass_kda, generator)
    n_residues = max(8, round(mass_kda * 1000 / n_copies / MEAN_RESIDUE_MASS_DA))
    positions, numbers = _subunit(config, n_residues, generator)
    positions, numbers = _assemble(positions, numbers, symmetry, n_copies, generator)
    return AtomicModel(f"synthetic_{mass_kda:.0f}kDa_{symmetry}", torch.from_numpy(positions),
                       torch.from_numpy(numbers))


# ---------------------------------------------------------------------------------------------------- random
def _uniform(generator: torch.Generator, *shape: int) -> np.ndarray | float:
    values = torch.rand(*shape if shape else (1,), generator=generator, dtype=torch.float64).numpy()
    return values if shape else float(values[0])


def _normal(generator: torch.Generator, *shape: int) -> np.ndarray:
    return torch.randn(*shape, generator=generator, dtype=torch.float64).numpy()


def _integer(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _rotation(generator: torch.Generator) -> np.ndarray:
    return uniform_rotations(1, generator, torch.float64)[0].numpy()


# ---------------------------------------------------------------------------------------------------- symmetry
def _draw_symmetry(config: SyntheticProteinConfig, mass_kda: float, generator: torch.Generator) -> tuple[int, str]:
    if _uniform(generator) >= config.oligomer_probability:
        return 1, "C1"
    if _uniform(generator) < config.dihedral_probability:
        order = _integer(generator, 2, config.max_dihedral_order)
        n_copies, symmetry = 2 * order, f"D{order}"
    else:
        order = _integer(generator, 2, config.max_cyclic_order)
        n_copies, symmetry = order, f"C{order}"
    if mass_kda / n_copies < config.min_subunit_mass_kda:
        return 1, "C1"
    return n_copies, symmetry


def _assemble(positions: np.ndarray, numbers: np.ndarray, symmetry: str, n_copies: int,
              generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Place ``n_copies`` of a centred subunit with Cn or Dn symmetry about z (subunits in contact)."""
    if n_copies == 1:
        return positions, numbers
    positions = positions @ _rotation(generator).T
    order = int(symmetry[1:])
    radius = _gyration_radius(positions) * math.sqrt(5 / 3)  # radius of the equivalent uniform sphere
    distance = 0.85 * radius / math.sin(math.pi / order) if order > 2 else 0.85 * radius
    if symmetry.startswith("C"):
        ring = positions + np.array([distance, 0.0, 0.0])
    else:
        ring = positions + np.array([distance, 0.0, 0.85 * radius])
    copies = []
    for k in range(order):
        angle = 2 * math.pi * k / order
        c, s = math.cos(angle), math.sin(angle)
        copies.append(ring @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T)
    if symmetry.startswith("D"):
        flip = np.diag([1.0, -1.0, -1.0])  # two-fold about x
        copies += [copy @ flip.T for copy in copies]
    return np.concatenate(copies), np.tile(numbers, len(copies))


def _gyration_radius(positions: np.ndarray) -> float:
    centred = positions - positions.mean(axis=0)
    return float(np.sqrt((centred**2).sum(axis=1).mean()))


# ---------------------------------------------------------------------------------------------------- subunit
def _subunit(config: SyntheticProteinConfig, n_residues: int, generator: torch.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """One chain of ``n_residues``: CA trace -> backbone and side chains. Returns positions (N, 3), Z (N,)."""
    volume = n_residues * MEAN_RESIDUE_MASS_DA / PROTEIN_DENSITY_DA_PER_A3
    trace = np.zeros((0, 3))
    for _ in range(4):  # grow the envelope until the lattice holds enough residues
        axes, frame = _envelope(config, volume, generator)
        trace, kind, outward = _ca_trace(config, axes, frame, n_residues, generator)
        if len(trace) >= n_residues:
            break
        volume *= 1.15 * n_residues / max(len(trace), 1)
    trace, kind, outward = trace[:n_residues], kind[:n_residues], outward[:n_residues]
    types = torch.multinomial(torch.tensor(list(AMINO_ACID_FREQUENCY.values()), dtype=torch.float64),
                              len(trace), replacement=True, generator=generator).numpy()
    positions, numbers, residue = _atoms_from_trace(config, trace, outward, types, generator)
    return _relax(positions, residue, config.min_atom_distance_angstrom, config.relax_iterations), numbers


def _relax(positions: np.ndarray, residue: np.ndarray, min_distance: float, iterations: int) -> np.ndarray:
    """Push apart atoms of different residues closer than ``min_distance``, and atoms of one residue closer than
    a bond (``BOND_ANGSTROM``); each atom of a pair moves half the overlap per round.

    Randomly placed residues clump like an ideal gas; real proteins are packed like a liquid (non-bonded heavy
    atoms stay ~3.5 A apart), which damps density fluctuations at 7-20 A.
    """
    positions = positions.copy()
    for _ in range(iterations):
        pairs = cKDTree(positions).query_pairs(min_distance, output_type="ndarray")
        if len(pairs) == 0:
            break
        delta = positions[pairs[:, 1]] - positions[pairs[:, 0]]
        distance = np.linalg.norm(delta, axis=1, keepdims=True)
        limit = np.where(residue[pairs[:, 0]] == residue[pairs[:, 1]], BOND_ANGSTROM, min_distance)[:, None]
        overlap = np.maximum(limit - distance, 0.0)
        push = 0.5 * overlap * delta / np.maximum(distance, 1e-6)
        moves = np.zeros_like(positions)
        np.add.at(moves, pairs[:, 1], push)
        np.add.at(moves, pairs[:, 0], -push)
        positions += moves
    return positions


def _envelope(config: SyntheticProteinConfig, volume: float, generator: torch.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes (3,) of an ellipsoid of the given volume and its orientation (3, 3): rows are the axes."""
    radius = (3 * volume / (4 * math.pi)) ** (1 / 3)
    if _uniform(generator) < config.elongated_probability:
        aspect = 1.5 + (config.max_aspect_ratio - 1.5) * _uniform(generator)
        axes = radius * np.array([aspect ** (2 / 3), aspect ** (-1 / 3), aspect ** (-1 / 3)])
    else:
        axes = radius * np.exp(0.12 * _normal(generator, 3))
        axes *= radius / np.prod(axes) ** (1 / 3)
    return axes, _rotation(generator)


def _inside(points: np.ndarray, axes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    local = points @ frame.T
    return ((local / axes) ** 2).sum(axis=-1) <= 1.0


def _ca_trace(config: SyntheticProteinConfig, axes: np.ndarray, frame: np.ndarray, n_residues: int,
              generator: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CA positions (M, 3), element kind (M,) (0 loop, 1 helix, 2 strand) and side-chain directions (M, 3)."""
    n_domains = max(1, round(n_residues / config.domain_residues))
    samples = (_uniform(generator, 48 * n_domains, 3) * 2 - 1) * axes @ frame
    samples = samples[_inside(samples, axes, frame)]
    centres, labels = _kmeans(samples, n_domains, generator)
    elements: list[tuple[np.ndarray, int, np.ndarray]] = []
    for k in _domain_tour(centres):
        members = samples[labels == k]
        extent = float(np.sqrt(((members - centres[k]) ** 2).sum(axis=1)).max()) + 6.0 if len(members) else 10.0
        elements += _domain_elements(config, centres, k, extent, axes, frame, generator)
    if not elements:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    pieces, kinds, directions = [], [], []
    for i, (points, kind, outward) in enumerate(elements):
        if i > 0:
            loop, loop_out = _loop(pieces[-1][-1], points[0], generator)
            pieces.append(loop)
            kinds.append(np.zeros(len(loop), dtype=np.int64))
            directions.append(loop_out)
        pieces.append(points)
        kinds.append(np.full(len(points), kind, dtype=np.int64))
        directions.append(outward)
    return np.concatenate(pieces), np.concatenate(kinds), np.concatenate(directions)


def _kmeans(points: np.ndarray, k: int, generator: torch.Generator, iterations: int = 8
            ) -> tuple[np.ndarray, np.ndarray]:
    start = torch.randperm(len(points), generator=generator)[:k].numpy()
    centres = points[start]
    labels = np.zeros(len(points), dtype=np.int64)
    for _ in range(iterations):
        labels = ((points[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)
        for j in range(len(centres)):
            if (labels == j).any():
                centres[j] = points[labels == j].mean(axis=0)
    return centres, labels


def _domain_tour(centres: np.ndarray) -> list[int]:
    """Greedy nearest-neighbour order of the domains, starting from the one farthest from the centroid."""
    remaining = list(range(len(centres)))
    current = int(np.argmax(((centres - centres.mean(0)) ** 2).sum(1)))
    order = [current]
    remaining.remove(current)
    while remaining:
        d = ((centres[remaining] - centres[current]) ** 2).sum(1)
        current = remaining.pop(int(np.argmin(d)))
        order.append(current)
    return order


def _domain_elements(config: SyntheticProteinConfig, centres: np.ndarray, k: int, extent: float,
                     axes: np.ndarray, frame: np.ndarray, generator: torch.Generator
                     ) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """Helices and strands of domain ``k`` in chain order: list of (CA (n, 3), kind, side-chain dirs (n, 3))."""
    basis = _rotation(generator)  # rows: u (rod direction), v (within layer), w (between layers)
    u, v, w = basis
    fold = _uniform(generator)
    if fold < config.alpha_probability:
        layer_kinds, layer_spacing = (1, 1), HELIX_SPACING_ANGSTROM * math.sqrt(3) / 2
    elif fold < config.alpha_probability + config.beta_probability:
        layer_kinds, layer_spacing = (2, 2), SHEET_SPACING_ANGSTROM
    else:
        layer_kinds, layer_spacing = (1, 2), SHEET_SPACING_ANGSTROM
    n_layers = int(2 * extent / layer_spacing) + 1
    elements = []
    for layer in range(n_layers):
        kind = layer_kinds[layer % 2]
        spacing = HELIX_SPACING_ANGSTROM if kind == 1 else STRAND_SPACING_ANGSTROM
        offset_w = (layer - (n_layers - 1) / 2) * layer_spacing
        stagger = 0.5 * spacing * (layer % 2) if kind == 1 else 0.0
        n_rods = int(2 * extent / spacing) + 1
        rods = [(r - (n_rods - 1) / 2) * spacing + stagger for r in range(n_rods)]
        if layer % 2:
            rods = rods[::-1]
        for offset_v in rods:
            elements += _rod(config, centres, k, extent, axes, frame, kind, u, v, w, offset_v, offset_w, generator)
    # alternate the direction of consecutive elements (antiparallel packing, short connections)
    return [(p[::-1], kind, d[::-1]) if i % 2 else (p, kind, d) for i, (p, kind, d) in enumerate(elements)]


def _rod(config: SyntheticProteinConfig, centres: np.ndarray, k: int, extent: float, axes: np.ndarray,
         frame: np.ndarray, kind: int, u: np.ndarray, v: np.ndarray, w: np.ndarray, offset_v: float,
         offset_w: float, generator: torch.Generator) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """Segments of one lattice rod that lie in the envelope and in domain ``k``."""
    jitter = config.rod_jitter_angstrom * _normal(generator, 2)
    tilt = math.radians(config.rod_tilt_degrees) * _normal(generator, 2)
    direction = u + tilt[0] * v + tilt[1] * w
    direction /= np.linalg.norm(direction)
    side_v = v - (v @ direction) * direction
    side_v /= np.linalg.norm(side_v)
    side_w = np.cross(direction, side_v)
    origin = centres[k] + (offset_v + jitter[0]) * v + (offset_w + jitter[1]) * w
    rise = HELIX_RISE_ANGSTROM if kind == 1 else STRAND_RISE_ANGSTROM
    t = np.arange(-extent, extent, rise) + rise * _uniform(generator)
    axis_points = origin + t[:, None] * direction
    index = np.arange(len(t))
    if kind == 1:
        angle = HELIX_TWIST_RADIANS * index + 2 * math.pi * _uniform(generator)
        radial = np.cos(angle)[:, None] * side_v + np.sin(angle)[:, None] * side_w
        points = axis_points + HELIX_RADIUS_ANGSTROM * radial
        outward = radial
    else:
        sign = np.where(index % 2 == 0, 1.0, -1.0)[:, None]
        outward = sign * side_w
        points = axis_points + STRAND_PLEAT_ANGSTROM * outward
    nearest = ((axis_points[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)
    keep = _inside(axis_points, axes, frame) & (nearest == k)
    minimum = config.min_helix_residues if kind == 1 else config.min_strand_residues
    segments = []
    for start, stop in _runs(keep):
        if stop - start >= minimum:
            segments.append((points[start:stop], kind, outward[start:stop]))
    return segments


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of True in a 1D boolean array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _loop(start: np.ndarray, stop: np.ndarray, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CA positions strictly between two element ends, bulging away from the protein's centre (origin)."""
    gap = stop - start
    distance = float(np.linalg.norm(gap))
    middle = (start + stop) / 2
    away = middle / max(float(np.linalg.norm(middle)), 1e-6)
    away = away - (away @ gap) * gap / max(distance**2, 1e-6)
    bulge = 0.3 * distance + 1.5
    n = max(2, math.ceil(1.25 * distance / CA_CA_ANGSTROM))
    s = np.arange(1, n + 1) / (n + 1)
    points = start + s[:, None] * gap + bulge * np.sin(math.pi * s)[:, None] * away + 0.8 * _normal(generator, n, 3)
    directions = _normal(generator, n, 3) + away
    return points, directions / np.linalg.norm(directions, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------------- atoms
_SIDECHAIN = []
for _aa in _AMINO_ACIDS:
    _formula = dict(RESIDUE_FORMULA[_aa])
    _formula["C"] -= 2
    _formula["N"] -= 1
    _formula["O"] -= 1
    # order the side-chain atoms: carbons first (CB...), then heteroatoms at the tip
    _SIDECHAIN.append([_ATOMIC_NUMBER[e] for e in ("C", "S", "N", "O") for _ in range(_formula.get(e, 0))])
_MAX_SIDECHAIN = max(len(s) for s in _SIDECHAIN)
_SIDECHAIN_Z = np.zeros((len(_AMINO_ACIDS), _MAX_SIDECHAIN), dtype=np.int64)
for _i, _atoms in enumerate(_SIDECHAIN):
    _SIDECHAIN_Z[_i, : len(_atoms)] = _atoms


def _atoms_from_trace(config: SyntheticProteinConfig, trace: np.ndarray, outward: np.ndarray, types: np.ndarray,
                      generator: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backbone N, CA, C, O from the CA trace and side chains along ``outward``.

    Returns positions (N, 3), atomic numbers (N,) and residue index (N,).
    """
    n = len(trace)
    before = np.concatenate([2 * trace[:1] - trace[1:2], trace[:-1]]) if n > 1 else trace - [CA_CA_ANGSTROM, 0, 0]
    after = np.concatenate([trace[1:], 2 * trace[-1:] - trace[-2:-1]]) if n > 1 else trace + [CA_CA_ANGSTROM, 0, 0]
    forward = _unit(after - trace)
    backward = _unit(before - trace)
    away = _unit(outward - 0.3 * (forward + backward))
    nitrogen = trace + 1.46 * _unit(backward + 0.35 * away)
    carbon = trace + 1.52 * _unit(forward + 0.35 * away)
    oxygen = carbon + 1.23 * _unit(np.cross(forward, away) + 0.2 * forward)
    steps = (config.sidechain_persistence * outward[:, None, :]
             + _normal(generator, n, _MAX_SIDECHAIN, 3))
    steps = config.sidechain_step_angstrom * _unit(steps)
    side = trace[:, None, :] + np.cumsum(steps, axis=1)
    side_z = _SIDECHAIN_Z[types]
    positions = np.concatenate([np.stack([nitrogen, trace, carbon, oxygen], axis=1), side], axis=1)
    numbers = np.concatenate([np.tile(np.array([7, 6, 6, 8]), (n, 1)), side_z], axis=1)
    present = numbers > 0
    residue = np.broadcast_to(np.arange(n)[:, None], numbers.shape)
    return positions[present], numbers[present], residue[present]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-9)
