"""Fourier ring sums shared by the FRC, the power spectra and the VAE's per-ring loss."""

import torch


def test_ring_sums_add_every_pixel_to_its_ring():
    from cryophase.evaluation.frc import ring_index, ring_sums

    values = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sums = ring_sums(values)
    index, n_rings = ring_index((12, 10))
    assert sums.shape == (3, n_rings)
    for r in range(n_rings):
        torch.testing.assert_close(sums[:, r], values[:, index == r].sum(dim=1))
    inside = index < n_rings  # the corner pixels beyond the last ring are left out
    torch.testing.assert_close(sums.sum(dim=1), values[:, inside].sum(dim=1))
