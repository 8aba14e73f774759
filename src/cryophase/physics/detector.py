"""Shot noise and the detector: the N in y = N(A(x)).

``sample_counts`` draws Poisson electron counts from expected counts with an explicit ``torch.Generator``;
``poisson_log_likelihood`` scores a measurement against expected counts. Detector response (MTF, DQE, dose
weighting) lives in :mod:`cryophase.physics.camera`.
"""

from __future__ import annotations

import torch


def sample_counts(expected: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson electron counts with mean ``expected``.

    Parameters
    ----------
    expected : torch.Tensor, (B, H, W), electrons per pixel, non-negative
    generator : torch.Generator on the same device as ``expected``. ``None`` is refused: every random call in
        cryophase is explicitly seeded.

    Returns
    -------
    torch.Tensor, (B, H, W), same dtype as ``expected``, integer-valued
    """
    if generator is None:
        raise ValueError("sample_counts needs a torch.Generator; cryophase never uses the global RNG")
    if (expected < 0).any():
        raise ValueError("expected counts must be non-negative")
    return torch.poisson(expected, generator=generator)


def poisson_log_likelihood(counts: torch.Tensor, expected: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Poisson log-likelihood per image, dropping the constant ``-log(counts!)``.

    ``sum(counts * log(expected) - expected)`` over pixels.

    Returns
    -------
    torch.Tensor, (B,)
    """
    expected = expected.clamp_min(eps)
    return (counts * torch.log(expected) - expected).sum(dim=(-2, -1))


def poisson_nll_per_pixel(counts: torch.Tensor, expected: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Poisson negative log-likelihood per pixel relative to its minimum (the saturated model), (B,).

    ``mean(expected - counts + counts * log(counts / expected))``: zero for a perfect fit, about 0.5 per pixel
    for a correct model under shot noise.
    """
    expected = expected.clamp_min(eps)
    term = torch.where(counts > 0, counts * torch.log(counts.clamp_min(eps) / expected), torch.zeros_like(counts))
    return (expected - counts + term).mean(dim=(-2, -1))
