"""Simulated particle images with what real micrographs contain: ice, detector, neighbours, off-centre picks."""

from cryophase.simulation.batch import ParticleParameters, SimulatedBatch, simulate_batch
from cryophase.simulation.config import SimulationConfig
from cryophase.simulation.dataset import simulate_dataset

__all__ = ["SimulationConfig", "SimulatedBatch", "ParticleParameters", "simulate_batch", "simulate_dataset"]
