"""The contract every specimen honours: project it at given orientations and shifts onto a pixel grid.

A specimen returns its projected Coulomb potential (V*Angstrom) and the projected thickness of the solvent it
excludes (Angstrom), so the simulator can make the particle's phase relative to the ice it displaces:

    phase = sigma_e * (potential_volt_angstrom - ICE_MEAN_INNER_POTENTIAL_VOLT * excluded_thickness_angstrom)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class Projection:
    """Projections of a specimen, batched.

    Attributes
    ----------
    potential_volt_angstrom : torch.Tensor, (B, H, W)
        Projected Coulomb potential V_z of the specimen in vacuum, V*Angstrom.
    excluded_thickness_angstrom : torch.Tensor, (B, H, W)
        Projected thickness of the solvent-excluded volume, Angstrom (zeros where the specimen has no
        notion of excluded volume, e.g. a density map already relative to solvent).
    """

    potential_volt_angstrom: torch.Tensor
    excluded_thickness_angstrom: torch.Tensor


@runtime_checkable
class Specimen(Protocol):
    """Anything that can be projected: atomic models, maps, synthetic pseudo-proteins."""

    name: str

    def project(
        self,
        rotations: torch.Tensor,
        shifts_angstrom: torch.Tensor,
        image_shape: tuple[int, int],
        pixel_size_angstrom: float,
        *,
        b_factor_a2: float = 0.0,
    ) -> Projection:
        """Project at ``rotations`` (B, 3, 3) and in-plane ``shifts_angstrom`` (B, 2) as (y, x).

        The rotation maps specimen coordinates to microscope coordinates (x, y, z) and the projection is along
        z. Returns :class:`Projection` with tensors of shape (B, H, W), band-limited at the pixel size.
        """
        ...
