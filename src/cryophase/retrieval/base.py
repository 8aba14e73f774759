"""The one contract for reconstructors and the registry that maps method names to them.

A reconstructor is an object with ``name`` and ``reconstruct(measurement, physics, *, generator)``, where
``measurement`` is electron counts ``(B, H, W)`` in the raw-micrograph convention (protein dark) and ``physics``
is an :class:`~cryophase.physics.forward.ImagingPhysics` with per-image optics and dose. Methods register
themselves by name so that ``retrieve``, ``demo`` and the benchmarks loop over names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from cryophase.physics.forward import ImagingPhysics


@dataclass
class RetrievalResult:
    """Output of a reconstructor.

    Attributes
    ----------
    phase : torch.Tensor, (B, H, W), radians
        The retrieved phase (up to an unobservable constant offset).
    history : dict[str, torch.Tensor]
        Per-iteration diagnostics, each ``(n_iterations, B)``: at least ``"amplitude_residual"`` and
        ``"poisson_nll"`` for iterative methods (empty tensors for one-shot filters).
    uncertainty : torch.Tensor or None, (B, H, W)
        Per-pixel standard deviation, for methods that sample (``ldm``).
    """

    phase: torch.Tensor
    history: dict[str, torch.Tensor] = field(default_factory=dict)
    uncertainty: torch.Tensor | None = None


class Reconstructor(Protocol):
    name: str

    def reconstruct(
        self, measurement: torch.Tensor, physics: ImagingPhysics, *, generator: torch.Generator | None = None
    ) -> RetrievalResult: ...


_REGISTRY: dict[str, Callable[..., Reconstructor]] = {}


def register(name: str):
    """Class decorator: make a reconstructor available as ``get_method(name)``."""

    def wrap(factory):
        if name in _REGISTRY:
            raise ValueError(f"retrieval method {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def _load_builtin_methods() -> None:
    # Importing the modules registers them; kept here so `get_method` works without the caller importing them.
    import importlib
    import pkgutil

    import cryophase.retrieval as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in ("base",):
            importlib.import_module(f"cryophase.retrieval.{info.name}")


def available_methods() -> list[str]:
    _load_builtin_methods()
    return sorted(_REGISTRY)


def method_option_names(name: str) -> set[str]:
    """The option names a registered method takes (its dataclass fields)."""
    import dataclasses

    _load_builtin_methods()
    if name not in _REGISTRY:
        raise KeyError(f"unknown retrieval method {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    factory = _REGISTRY[name]
    return {f.name for f in dataclasses.fields(factory)} if dataclasses.is_dataclass(factory) else set()


def get_method(name: str, **options) -> Reconstructor:
    """Instantiate the reconstructor registered as ``name`` with keyword ``options`` (its config fields)."""
    _load_builtin_methods()
    if name not in _REGISTRY:
        raise KeyError(f"unknown retrieval method {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)
