"""Exponential moving average of model weights (the weights that are exported and validated)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``shadow = decay * shadow + (1 - decay) * weights`` after every optimiser step.

    The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` so early averages are not dominated by the
    random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for shadow, live in zip(self.model.state_dict().values(), model.state_dict().values()):
            if shadow.dtype.is_floating_point:
                shadow.lerp_(live.detach(), 1.0 - d)
            else:
                shadow.copy_(live)
