"""Rotations: uniform random orientations on SO(3) and RELION's Euler-angle convention.

A rotation matrix ``R`` (3, 3) maps specimen coordinates (x, y, z) to microscope coordinates; images are
projections along the microscope z axis. This is RELION's matrix ``A`` (Scheres 2012; ``Euler_angles2matrix`` in
RELION's ``src/euler.cpp``): a reference is projected as ``P(x') = integral V(A^T x') dz'``.
"""

from __future__ import annotations

import math

import torch


def uniform_rotations(
    n: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Rotation matrices drawn uniformly (Haar measure) from SO(3).

    A quaternion with four independent standard-normal components, normalised, is uniform on the 3-sphere, and
    the induced rotation is uniform on SO(3) (Shoemake 1992).

    Parameters
    ----------
    n : int
        Number of rotations.
    generator : torch.Generator
        Source of randomness (on ``device``).
    dtype, device
        Of the returned tensor.

    Returns
    -------
    torch.Tensor, (n, 3, 3)
    """
    gen_device = generator.device
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64, device=gen_device)
    q = q / q.norm(dim=1, keepdim=True)
    return quaternion_to_matrix(q).to(dtype=dtype, device=device if device is not None else gen_device)


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from unit quaternions (w, x, y, z), shape (..., 4) -> (..., 3, 3)."""
    w, x, y, z = quaternions.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*quaternions.shape[:-1], 3, 3)


def euler_relion_to_matrix(
    rot_degrees: float | torch.Tensor,
    tilt_degrees: float | torch.Tensor,
    psi_degrees: float | torch.Tensor,
) -> torch.Tensor:
    """RELION's ZYZ Euler angles (rlnAngleRot, rlnAngleTilt, rlnAnglePsi, in degrees) to rotation matrices.

    Follows ``Euler_angles2matrix`` in RELION (src/euler.cpp): ``A = Rz(psi) Ry(tilt) Rz(rot)`` with the
    passive elementary rotations ``Rz(a) = [[c, s, 0], [-s, c, 0], [0, 0, 1]]`` and
    ``Ry(b) = [[c, 0, -s], [0, 1, 0], [s, 0, c]]``.

    Parameters
    ----------
    rot_degrees, tilt_degrees, psi_degrees : float or torch.Tensor, (B,) or scalars (broadcast)

    Returns
    -------
    torch.Tensor, (B, 3, 3) (or (3, 3) for scalar input), float64 unless the inputs are floating tensors.
    """
    angles = torch.broadcast_tensors(*(a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=torch.float64)
                                       for a in (rot_degrees, tilt_degrees, psi_degrees)))
    dtype = angles[0].dtype if angles[0].is_floating_point() else torch.float64
    alpha, beta, gamma = (a.to(dtype) * (math.pi / 180) for a in angles)
    ca, sa = torch.cos(alpha), torch.sin(alpha)
    cb, sb = torch.cos(beta), torch.sin(beta)
    cg, sg = torch.cos(gamma), torch.sin(gamma)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    rows = [
        cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb,
        -sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb,
        sc, ss, cb,
    ]
    return torch.stack(rows, dim=-1).reshape(*alpha.shape, 3, 3)
