"""Atomic models: projected Coulomb potential of isolated atoms, fast and band-limited.

Physics (Kirkland 2020, ch. 5): the projected potential of an isolated atom is
``v_z(r) = K * F2^-1[f_e(q / 2)](r)`` with ``K = h^2 / (2 pi m0 e) = 47.878 V*A^2``
(:data:`~cryophase.conventions.POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2`), ``q = 1/d`` the spatial frequency in
cycles per Angstrom and ``f_e(s) = sum_i a_i exp(-b_i s^2)`` the electron scattering factor in Angstrom with
``s = sin(theta) / lambda = q / 2``: Peng et al. (1996) five-Gaussian fits, International Tables C table
4.3.2.2, as carried by gemmi (``gemmi.Element(x).c4322``). The integral of ``v_z`` over the plane is
``K * f_e(0)``. A B-factor multiplies the form factor by ``exp(-B s^2) = exp(-B q^2 / 4)``.

Algorithm (exact up to the interpolation aliasing of the deposit, which is < 1 % below half the output Nyquist
frequency for the default 2x oversampling):

1. rotate the atoms, add the in-plane shifts, and deposit each atom's occupancy on a grid ``oversampling`` times
   finer than the output (cloud-in-cell, i.e. bilinear weights), one channel per scattering group (element, and
   B-factor bin when per-atom B-factors are used), for all particles in one ``index_add_``;
2. Fourier transform, keep only the frequencies of the output grid (Fourier cropping: the result is band-limited
   at the output pixel size), multiply each group by its form factor and divide by the transfer function of the
   cloud-in-cell kernel, ``sinc^2(q_y dx) sinc^2(q_x dx)``;
3. sum the groups, inverse transform and crop the padding (the box is padded by the width of the widest atom,
   rounded up to a fast FFT size, so nothing wraps around).

The solvent-excluded volume goes through the same pipeline: each atom excludes ``mass / 0.81 Da/A^3`` of
solvent (protein packing density, Fischer et al. 2004; the mass includes its implicit hydrogens), as a Gaussian
blob whose second moment equals that of a uniform sphere of that volume.

Hydrogens: most PDB entries lack them. With ``implicit_hydrogens=True`` (the default) and no explicit hydrogen in
the model, each heavy atom carries on average ``IMPLICIT_HYDROGENS_PER_ATOM[element]`` hydrogens that scatter with
the hydrogen form factor at the heavy atom's position (C 1.2, N 1.1, O 0.2, S 0.6: with the average amino-acid
composition this gives the exact average hydrogen count per residue, see ``tests/specimens/test_atoms.py``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import torch

from cryophase.conventions import POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2, PROTEIN_DENSITY_DA_PER_A3
from cryophase.errors import CryophaseError
from cryophase.specimens.base import Projection

#: Average number of (implicit) hydrogens bonded to a heavy atom of each element in proteins.
IMPLICIT_HYDROGENS_PER_ATOM = {"C": 1.2, "N": 1.1, "O": 0.2, "S": 0.6}
HYDROGEN_MASS_DA = 1.008
#: Width of the B-factor bins when per-atom B-factors are used, A^2.
B_FACTOR_BIN_A2 = 5.0
#: B-factor (A^2) that the padding of the projection box always allows for.
MARGIN_B_FACTOR_A2 = 200.0
#: Atom-particle pairs and grid voxels handled at once (bounds the memory to a few hundred MB).
ATOM_PARTICLE_BUDGET = 2_000_000
GRID_VOXEL_BUDGET = 8_000_000
STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")


@dataclass(frozen=True)
class ScatteringGroups:
    """Atoms grouped by identical form factor.

    Attributes
    ----------
    group_of_atom : torch.Tensor, (N,) int64
    form_factor_a : torch.Tensor, (G, K) float64, Angstrom
        Gaussian amplitudes summed over the heavy atom and its implicit hydrogens (K = 5 or 10 terms).
    form_factor_b : torch.Tensor, (G, K) float64, A^2
        Gaussian widths, B-factor of the group already added.
    excluded_volume_a3 : torch.Tensor, (G,) float64
        Solvent volume excluded by one atom of the group.
    """

    group_of_atom: torch.Tensor
    form_factor_a: torch.Tensor
    form_factor_b: torch.Tensor
    excluded_volume_a3: torch.Tensor


@dataclass
class AtomicModel:
    """An atomic model (coordinates in Angstrom, centred on their centroid) that can be projected.

    Parameters
    ----------
    name : str
    positions_angstrom : torch.Tensor, (N, 3) as (x, y, z)
    atomic_numbers : torch.Tensor, (N,) int
    occupancies : torch.Tensor, (N,), optional (default ones)
    b_factors_a2 : torch.Tensor, (N,), optional (default zeros)
    implicit_hydrogens : bool
        Add the scattering of implicit hydrogens to heavy atoms (only when the model has no explicit hydrogen).
    use_atomic_b_factors : bool
        Blur each atom with its own B-factor from the file (binned to ``B_FACTOR_BIN_A2``). Off by default:
        crystallographic B-factors mix disorder with lattice effects that a single particle does not have.
    oversampling : int
        Fineness of the deposit grid relative to the output pixel size.
    centre : bool
        Translate the atoms so that their centroid is at the origin.
    """

    name: str
    positions_angstrom: torch.Tensor
    atomic_numbers: torch.Tensor
    occupancies: torch.Tensor | None = None
    b_factors_a2: torch.Tensor | None = None
    implicit_hydrogens: bool = True
    use_atomic_b_factors: bool = False
    oversampling: int = 2
    centre: bool = True
    _groups: ScatteringGroups | None = field(default=None, init=False, repr=False)
    _plans: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.positions_angstrom = torch.as_tensor(self.positions_angstrom, dtype=torch.float64)
        n = self.positions_angstrom.shape[0]
        if self.positions_angstrom.ndim != 2 or self.positions_angstrom.shape[1] != 3 or n == 0:
            raise CryophaseError(f"{self.name}: positions must be a non-empty (N, 3) array")
        self.atomic_numbers = torch.as_tensor(self.atomic_numbers, dtype=torch.int64)
        if self.occupancies is None:
            self.occupancies = torch.ones(n, dtype=torch.float64)
        if self.b_factors_a2 is None:
            self.b_factors_a2 = torch.zeros(n, dtype=torch.float64)
        self.occupancies = torch.as_tensor(self.occupancies, dtype=torch.float64)
        self.b_factors_a2 = torch.as_tensor(self.b_factors_a2, dtype=torch.float64)
        if self.centre:
            self.positions_angstrom = self.positions_angstrom - self.positions_angstrom.mean(dim=0)
        if self.oversampling < 1:
            raise CryophaseError(f"{self.name}: oversampling must be >= 1, got {self.oversampling}")

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        keep_waters: bool = False,
        keep_hetero: bool = True,
        model_index: int = 0,
        implicit_hydrogens: bool = True,
        use_atomic_b_factors: bool = False,
    ) -> AtomicModel:
        """Read a PDB or mmCIF file (optionally gzipped) with gemmi.

        Parameters
        ----------
        path : str or Path
        keep_waters : bool
            Keep water molecules (usually only the ordered ones are modelled, so they are dropped by default).
        keep_hetero : bool
            Keep ligands, ions and other HETATM residues.
        model_index : int
            Which model of a multi-model (NMR) file to read; the first by default.
        implicit_hydrogens, use_atomic_b_factors
            See :class:`AtomicModel`.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such structure file")
        if path.is_dir():
            raise CryophaseError(f"{path}: is a folder, not a PDB/mmCIF file")
        try:
            structure = gemmi.read_structure(str(path))
        except Exception as exc:  # gemmi raises RuntimeError/ValueError with variable messages
            raise CryophaseError(f"{path}: not a readable PDB/mmCIF file ({exc})") from None
        if len(structure) == 0:
            raise CryophaseError(f"{path}: contains no model")
        if not 0 <= model_index < len(structure):
            raise CryophaseError(f"{path}: model_index {model_index} out of range (file has {len(structure)} models)")
        positions, numbers, occupancies, b_factors, unknown = [], [], [], [], []
        for chain in structure[model_index]:
            for residue in chain:
                if residue.is_water():
                    if not keep_waters:
                        continue
                elif residue.het_flag == "H" and not keep_hetero:
                    continue
                standard = _is_standard_polymer_residue(residue.name)
                for atom in residue:
                    z = atom.element.atomic_number
                    if standard or z == 0:
                        z = _element_of_standard_atom(atom.name)
                    if z == 0:
                        unknown.append(f"{residue.name} {residue.seqid.num} {atom.name}")
                        continue
                    pos = atom.pos
                    positions.append((pos.x, pos.y, pos.z))
                    numbers.append(z)
                    occupancies.append(atom.occ)
                    b_factors.append(atom.b_iso)
        if unknown:
            warnings.warn(f"{path}: skipped {len(unknown)} atoms of unknown element (e.g. {unknown[0]})",
                          stacklevel=2)
        if not positions:
            raise CryophaseError(f"{path}: no atoms left after removing waters/hetero groups")
        return cls(
            name=path.name.split(".")[0],
            positions_angstrom=torch.tensor(positions, dtype=torch.float64),
            atomic_numbers=torch.tensor(numbers, dtype=torch.int64),
            occupancies=torch.tensor(occupancies, dtype=torch.float64),
            b_factors_a2=torch.tensor(b_factors, dtype=torch.float64),
            implicit_hydrogens=implicit_hydrogens,
            use_atomic_b_factors=use_atomic_b_factors,
        )

    # ------------------------------------------------------------------ properties
    @property
    def num_atoms(self) -> int:
        return int(self.positions_angstrom.shape[0])

    @property
    def has_explicit_hydrogens(self) -> bool:
        return bool((self.atomic_numbers == 1).any())

    def implicit_hydrogen_counts(self) -> torch.Tensor:
        """Implicit hydrogens carried by each atom, (N,) float64 (zeros if switched off or H are explicit)."""
        counts = torch.zeros(self.num_atoms, dtype=torch.float64)
        if not self.implicit_hydrogens or self.has_explicit_hydrogens:
            return counts
        for symbol, n_h in IMPLICIT_HYDROGENS_PER_ATOM.items():
            counts[self.atomic_numbers == gemmi.Element(symbol).atomic_number] = n_h
        return counts

    def atom_masses_dalton(self) -> torch.Tensor:
        """Mass of each atom including its implicit hydrogens, (N,) float64."""
        table = _element_table(self.atomic_numbers)
        return table["mass"] + HYDROGEN_MASS_DA * self.implicit_hydrogen_counts()

    @property
    def mass_dalton(self) -> float:
        """Occupancy-weighted mass, implicit hydrogens included."""
        return float((self.atom_masses_dalton() * self.occupancies).sum())

    def total_scattering_factor_angstrom(self) -> float:
        """sum over atoms of occupancy * f_e(0), implicit hydrogens included (Angstrom)."""
        groups = self.scattering_groups()
        per_group = groups.form_factor_a.sum(dim=1)
        return float((per_group[groups.group_of_atom] * self.occupancies).sum())

    @property
    def radius_angstrom(self) -> float:
        """Largest distance of an atom from the origin."""
        return float(self.positions_angstrom.norm(dim=1).max())

    def scattering_groups(self) -> ScatteringGroups:
        """Group the atoms by (element, B-factor bin); cached."""
        if self._groups is None:
            self._groups = self._make_groups()
        return self._groups

    def _plan(self, image_shape: tuple[int, int], pixel_size: float, margin_b: float, dtype: torch.dtype,
              device: torch.device) -> "_ProjectionPlan":
        """The projection plan for one grid, cached: simulation calls ``project`` with a few particles at a time."""
        key = (image_shape, pixel_size, margin_b, dtype, str(device))
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 8:
                self._plans.pop(next(iter(self._plans)))
            plan = _ProjectionPlan.make(self, image_shape, pixel_size, margin_b, dtype, device)
            self._plans[key] = plan
        return plan

    def _make_groups(self) -> ScatteringGroups:
        if self.use_atomic_b_factors:
            b_bin = torch.round(self.b_factors_a2.clamp_min(0) / B_FACTOR_BIN_A2).to(torch.int64)
        else:
            b_bin = torch.zeros_like(self.atomic_numbers)
        keys = self.atomic_numbers * 100_000 + b_bin
        unique_keys, group_of_atom = torch.unique(keys, return_inverse=True)
        numbers = unique_keys // 100_000
        b_values = (unique_keys % 100_000).to(torch.float64) * B_FACTOR_BIN_A2
        h_counts = self.implicit_hydrogen_counts()
        hydrogen = gemmi.Element("H").c4322
        a_rows, b_rows, volumes = [], [], []
        for z, b_group in zip(numbers.tolist(), b_values.tolist()):
            element = gemmi.Element(z)
            n_h = float(h_counts[self.atomic_numbers == z][0]) if h_counts.numel() else 0.0
            a_rows.append(list(element.c4322.a) + [n_h * a for a in hydrogen.a])
            b_rows.append([b + b_group for b in list(element.c4322.b) + list(hydrogen.b)])
            volumes.append((element.weight + n_h * HYDROGEN_MASS_DA) / PROTEIN_DENSITY_DA_PER_A3)
        return ScatteringGroups(
            group_of_atom=group_of_atom,
            form_factor_a=torch.tensor(a_rows, dtype=torch.float64),
            form_factor_b=torch.tensor(b_rows, dtype=torch.float64),
            excluded_volume_a3=torch.tensor(volumes, dtype=torch.float64),
        )

    # ------------------------------------------------------------------ projection
    def project(
        self,
        rotations: torch.Tensor,
        shifts_angstrom: torch.Tensor,
        image_shape: tuple[int, int],
        pixel_size_angstrom: float,
        *,
        b_factor_a2: float | torch.Tensor = 0.0,
    ) -> Projection:
        """Projected potential and excluded-solvent thickness at the given orientations.

        Parameters
        ----------
        rotations : torch.Tensor, (B, 3, 3)
            Specimen -> microscope coordinates; projection along microscope z. Sets dtype and device.
        shifts_angstrom : torch.Tensor, (B, 2)
            In-plane shifts (y, x) in Angstrom; the specimen's origin lands at pixel (H // 2 + y/p, W // 2 + x/p).
        image_shape : (H, W)
        pixel_size_angstrom : float
        b_factor_a2 : float or torch.Tensor (B,)
            Isotropic B-factor of each particle, A^2.

        Returns
        -------
        Projection
            ``potential_volt_angstrom`` and ``excluded_thickness_angstrom``, each (B, H, W), band-limited at the
            pixel size.
        """
        if rotations.ndim != 3 or rotations.shape[1:] != (3, 3):
            raise CryophaseError(f"rotations must have shape (B, 3, 3), got {tuple(rotations.shape)}")
        n_particles = rotations.shape[0]
        if shifts_angstrom.shape != (n_particles, 2):
            raise CryophaseError(f"shifts_angstrom must have shape ({n_particles}, 2), "
                                 f"got {tuple(shifts_angstrom.shape)}")
        dtype, device = rotations.dtype, rotations.device
        b_particle = torch.as_tensor(b_factor_a2, dtype=dtype, device=device).expand(n_particles)
        # the padding allows for MARGIN_B_FACTOR_A2 at least, so that the result of a particle does not depend on
        # the other particles of its batch (up to that B-factor)
        margin_b = max(MARGIN_B_FACTOR_A2, float(b_particle.max()) if n_particles else 0.0)
        plan = self._plan(tuple(image_shape), float(pixel_size_angstrom), margin_b, dtype, device)
        chunk = max(1, min(ATOM_PARTICLE_BUDGET // self.num_atoms,
                           GRID_VOXEL_BUDGET // (plan.n_groups * plan.fine_shape[0] * plan.fine_shape[1])))
        outputs = [
            plan.project_chunk(rotations[i:i + chunk], shifts_angstrom[i:i + chunk].to(dtype), b_particle[i:i + chunk])
            for i in range(0, n_particles, chunk)
        ]
        both = torch.cat(outputs, dim=0) if outputs else torch.zeros(0, 2, *image_shape, dtype=dtype, device=device)
        return Projection(potential_volt_angstrom=both[:, 0], excluded_thickness_angstrom=both[:, 1])


@dataclass
class _ProjectionPlan:
    """Grids, filters and per-atom tensors for projecting one model onto one pixel grid."""

    positions_h: torch.Tensor  # (N, 4) homogeneous coordinates (x, y, z, 1)
    channel_offset: torch.Tensor  # (N,) group * fine_h * fine_w, in the working dtype
    weights: torch.Tensor  # (N,)
    filters: torch.Tensor  # (2, G, h, w//2+1) complex: potential, excluded volume
    q2: torch.Tensor  # (h, w//2+1) squared frequency, A^-2
    n_groups: int
    image_shape: tuple[int, int]
    padded_shape: tuple[int, int]
    fine_shape: tuple[int, int]
    pixel_size: float
    oversampling: int

    @classmethod
    def make(cls, model: AtomicModel, image_shape: tuple[int, int], pixel_size: float, max_particle_b: float,
             dtype: torch.dtype, device: torch.device) -> _ProjectionPlan:
        groups = model.scattering_groups()
        s = model.oversampling
        volume_sigma2 = _blob_sigma2(groups.excluded_volume_a3)
        widest_a2 = float(torch.cat([groups.form_factor_b.max(dim=1).values,
                                     8 * math.pi**2 * volume_sigma2]).max()) + max(max_particle_b, 0.0)
        margin = math.ceil(4 * math.sqrt(widest_a2 / (8 * math.pi**2)) / pixel_size) + 1
        h, w = image_shape
        padded = (_fast_fft_size(h + 2 * margin), _fast_fft_size(w + 2 * margin))
        fine = (padded[0] * s, padded[1] * s)
        qy = torch.fft.fftfreq(padded[0], d=pixel_size, dtype=torch.float64)
        qx = torch.fft.rfftfreq(padded[1], d=pixel_size, dtype=torch.float64)
        q2 = qy[:, None] ** 2 + qx[None, :] ** 2
        dx = pixel_size / s
        cic = (torch.sinc(qy * dx)[:, None] * torch.sinc(qx * dx)[None, :]) ** 2
        s2 = q2 / 4
        form = (groups.form_factor_a[:, :, None, None]
                * torch.exp(-groups.form_factor_b[:, :, None, None] * s2)).sum(dim=1)
        potential = POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2 * form / cic
        volume = (groups.excluded_volume_a3[:, None, None]
                  * torch.exp(-2 * math.pi**2 * volume_sigma2[:, None, None] * q2) / cic)
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return cls(
            positions_h=torch.cat([model.positions_angstrom, torch.ones(model.num_atoms, 1, dtype=torch.float64)],
                                  dim=1).to(dtype=dtype, device=device),
            channel_offset=(groups.group_of_atom * (fine[0] * fine[1])).to(dtype=dtype, device=device),
            weights=model.occupancies.to(dtype=dtype, device=device),
            filters=torch.stack([potential, volume]).to(dtype=complex_dtype, device=device),
            q2=q2.to(dtype=dtype, device=device),
            n_groups=int(groups.form_factor_a.shape[0]),
            image_shape=(h, w),
            padded_shape=padded,
            fine_shape=fine,
            pixel_size=pixel_size,
            oversampling=s,
        )

    def project_chunk(self, rotations: torch.Tensor, shifts: torch.Tensor, b_particle: torch.Tensor) -> torch.Tensor:
        """(b, 3, 3), (b, 2), (b,) -> (b, 2, H, W): potential (V*A) and excluded thickness (A)."""
        grid = self._deposit(rotations, shifts)  # (b, G, fine_h, fine_w)
        spectrum = self._cropped_spectrum(grid)  # (b, G, h, w//2+1)
        both = (spectrum[:, None] * self.filters[None]).sum(dim=2)  # (b, 2, h, w//2+1); faster than einsum on CPU
        both = both * torch.exp(-b_particle[:, None, None, None] * self.q2 / 4)
        images = torch.fft.irfft2(both, s=self.padded_shape)
        h, w = self.image_shape
        top = self.padded_shape[0] // 2 - h // 2
        left = self.padded_shape[1] // 2 - w // 2
        return images[..., top:top + h, left:left + w] / self.pixel_size**2

    def _deposit(self, rotations: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Cloud-in-cell deposit of all atoms of all particles: (b, 3, 3), (b, 2) -> (b, G, fine_h, fine_w)."""
        b = rotations.shape[0]
        fine_h, fine_w = self.fine_shape
        channel_size = fine_h * fine_w
        s = self.oversampling
        dx = self.pixel_size / s
        # affine map from homogeneous specimen coordinates to fine-grid (row, column) coordinates: (b, 2, 4)
        centre = torch.tensor([(self.padded_shape[0] // 2) * s, (self.padded_shape[1] // 2) * s],
                              dtype=rotations.dtype, device=rotations.device)
        affine = torch.cat([rotations[:, [1, 0], :] / dx, (shifts / dx + centre)[:, :, None]], dim=2)
        u = torch.matmul(affine, self.positions_h.T)  # (b, 2, N)
        corner = torch.floor(u)
        frac = u - corner
        i_y, i_x = corner.unbind(1)
        inside = (i_y >= 0) & (i_y < fine_h - 1) & (i_x >= 0) & (i_x < fine_w - 1)
        # flat index computed in floating point (exact below 2**24 in float32, else done in float64); outside
        # atoms go to a spare voxel at the end
        total = b * self.n_groups * channel_size
        index_dtype = rotations.dtype if total < 2**24 else torch.float64
        offsets = (torch.arange(b, dtype=index_dtype, device=rotations.device)[:, None]
                   * (self.n_groups * channel_size) + self.channel_offset[None, :].to(index_dtype))
        flat = (i_y * fine_w + i_x).to(index_dtype) + offsets
        index = torch.where(inside, flat, total).to(torch.int64).reshape(-1)
        weight_y = torch.stack([1 - frac[:, 0], frac[:, 0]])  # (2, b, N)
        weight_x = torch.stack([1 - frac[:, 1], frac[:, 1]]) * self.weights
        values = (weight_y[:, None] * weight_x[None, :]).reshape(4, -1)
        # the spare voxels after the grid receive the atoms outside it
        grid = torch.zeros(total + fine_w + 2, dtype=rotations.dtype, device=rotations.device)
        for offset, corner in zip((0, 1, fine_w, fine_w + 1), values):
            grid.index_add_(0, index + offset if offset else index, corner)
        return grid[:total].reshape(b, self.n_groups, fine_h, fine_w)

    def _cropped_spectrum(self, grid: torch.Tensor) -> torch.Tensor:
        """rFFT of the fine grid, keeping only the frequencies of the padded output grid (Fourier cropping)."""
        h, w = self.padded_shape
        spectrum = torch.fft.rfft(grid, dim=-1)[..., : w // 2 + 1]
        spectrum = torch.fft.fft(spectrum, dim=-2)
        n_pos, n_neg = (h + 1) // 2, h // 2
        if n_neg == 0:
            return spectrum[..., :n_pos, :]
        return torch.cat([spectrum[..., :n_pos, :], spectrum[..., -n_neg:, :]], dim=-2)


def _fast_fft_size(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _blob_sigma2(volume_a3: torch.Tensor) -> torch.Tensor:
    """Variance per axis of a Gaussian with the second moment of a uniform sphere of the given volume (r^2/5)."""
    radius = (3 * volume_a3 / (4 * math.pi)) ** (1 / 3)
    return radius**2 / 5


def _element_table(atomic_numbers: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-atom element properties (mass in Dalton)."""
    unique, inverse = torch.unique(atomic_numbers, return_inverse=True)
    masses = torch.tensor([gemmi.Element(int(z)).weight for z in unique.tolist()], dtype=torch.float64)
    return {"mass": masses[inverse]}


_POLYMER_ELEMENTS = {"H": 1, "D": 1, "C": 6, "N": 7, "O": 8, "P": 15, "S": 16}


def _is_standard_polymer_residue(name: str) -> bool:
    """Standard amino acid or nucleotide (gemmi's table), whose atom names start with their element."""
    info = gemmi.find_tabulated_residue(name)
    return info is not None and (info.is_amino_acid() or info.is_nucleic_acid()) and info.is_standard()


def _element_of_standard_atom(atom_name: str) -> int:
    """Element of an atom of a standard residue from its name (MD files often lack the element column).

    0 when the name does not start with H, D (deuterium, scattering like H), C, N, O, P or S.
    """
    letters = atom_name.lstrip("0123456789")
    return _POLYMER_ELEMENTS.get(letters[:1].upper(), 0)
