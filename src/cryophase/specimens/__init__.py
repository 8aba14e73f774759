"""Where the truth comes from: atomic models, density maps, user phase stacks and synthetic pseudo-proteins."""

from cryophase.specimens.base import Projection, Specimen

__all__ = ["Projection", "Specimen"]
