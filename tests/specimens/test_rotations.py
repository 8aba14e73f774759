import math

import torch

from cryophase.specimens.rotations import euler_relion_to_matrix, uniform_rotations


def test_uniform_rotations_are_rotations():
    g = torch.Generator().manual_seed(1)
    r = uniform_rotations(500, g, torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(500, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(500, dtype=torch.float64), atol=1e-12, rtol=0)


def test_uniform_rotations_are_uniform():
    # Haar measure: E[R] = 0 and the rotation angle has density (1 - cos w) / pi, so E[trace R] = 0 and
    # the projection direction R^T e_z is uniform on the sphere (E[z^2] = 1/3).
    g = torch.Generator().manual_seed(2)
    r = uniform_rotations(20000, g, torch.float64)
    assert r.mean(dim=0).abs().max() < 0.02
    trace = r.diagonal(dim1=1, dim2=2).sum(-1)
    assert abs(float(trace.mean())) < 0.03
    # Schur orthogonality: the trace is the character of an irreducible representation, so E[trace^2] = 1
    assert abs(float((trace**2).mean()) - 1.0) < 0.05
    direction = r[:, 2, :]
    assert abs(float((direction[:, 2] ** 2).mean()) - 1 / 3) < 0.01


def test_uniform_rotations_dtype_and_reproducible():
    a = uniform_rotations(3, torch.Generator().manual_seed(5), torch.float32)
    b = uniform_rotations(3, torch.Generator().manual_seed(5), torch.float32)
    assert a.dtype == torch.float32 and a.shape == (3, 3, 3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_relion_identity_and_composition():
    torch.testing.assert_close(euler_relion_to_matrix(0.0, 0.0, 0.0), torch.eye(3, dtype=torch.float64))
    g = torch.Generator().manual_seed(3)
    angles = torch.rand(3, 20, generator=g, dtype=torch.float64) * 360 - 180
    a = euler_relion_to_matrix(*angles)

    def rz(deg):
        c, s = torch.cos(deg * math.pi / 180), torch.sin(deg * math.pi / 180)
        z, o = torch.zeros_like(c), torch.ones_like(c)
        return torch.stack([c, s, z, -s, c, z, z, z, o], -1).reshape(-1, 3, 3)

    def ry(deg):
        c, s = torch.cos(deg * math.pi / 180), torch.sin(deg * math.pi / 180)
        z, o = torch.zeros_like(c), torch.ones_like(c)
        return torch.stack([c, z, -s, z, o, z, s, z, c], -1).reshape(-1, 3, 3)

    torch.testing.assert_close(a, rz(angles[2]) @ ry(angles[1]) @ rz(angles[0]))
    # tilt 90: the projection direction (third row) lies in the xy plane at angle rot
    t = euler_relion_to_matrix(30.0, 90.0, 0.0)
    torch.testing.assert_close(t[2], torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6), 0.0],
                                                  dtype=torch.float64), atol=1e-12, rtol=0)


def test_quaternion_to_matrix_axis_angle():
    from cryophase.specimens.rotations import quaternion_to_matrix

    # (cos(a/2), 0, 0, sin(a/2)) is a rotation by a about z: x -> (cos a, sin a, 0)
    a = 0.7
    q = torch.tensor([math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)], dtype=torch.float64)
    r = quaternion_to_matrix(q)
    torch.testing.assert_close(r @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                               torch.tensor([math.cos(a), math.sin(a), 0.0], dtype=torch.float64))
    torch.testing.assert_close(quaternion_to_matrix(torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)),
                               torch.eye(3, dtype=torch.float64))
