"""Noise schedules and samplers (thin wrappers over diffusers' schedulers)."""

from cryophase.diffusion.schedule import DiffusionConfig, NoiseSchedule
from cryophase.diffusion.sampler import SAMPLERS, make_sampler

__all__ = ["DiffusionConfig", "NoiseSchedule", "SAMPLERS", "make_sampler"]
