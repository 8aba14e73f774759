"""Phase retrieval from one image. Every method, classical or learned, honours one contract::

    result = method.reconstruct(measurement, physics, generator=generator)
    result.phase    # (B, H, W) radians
    result.history  # per-iteration diagnostics

See :mod:`cryophase.retrieval.base`.
"""

from cryophase.retrieval.base import Reconstructor, RetrievalResult, available_methods, get_method, register

__all__ = ["Reconstructor", "RetrievalResult", "available_methods", "get_method", "register"]
