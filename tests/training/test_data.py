import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import get_method
from cryophase.retrieval.model_grid import with_measured_dose
from cryophase.training.data import Conditioner, TrainingBatch
from models.tiny import tiny_data


def test_conditioner_gives_the_method_the_measured_dose_as_inference_does():
    # Training must condition on what inference computes: `ldm` and `regression` run their conditioning method
    # with the dose measured from the counts, so a stated dose off by x2 must not change the training condition.
    data = tiny_data(3)
    conditioner = Conditioner("ml")
    batch = TrainingBatch(data.phase, data.counts, data.physics)
    wrong = TrainingBatch(data.phase, data.counts, ImagingPhysics(data.physics.optics, 2 * data.physics.dose_e_per_a2))
    condition = conditioner(batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(conditioner(wrong, torch.Generator().manual_seed(0)), condition)
    at_inference = get_method("ml").reconstruct(data.counts, with_measured_dose(data.counts, data.physics),
                                                generator=torch.Generator().manual_seed(0)).phase
    torch.testing.assert_close(condition, at_inference.to(condition))
    stated = get_method("ml").reconstruct(data.counts, wrong.physics, generator=torch.Generator().manual_seed(0))
    assert (stated.phase - condition).abs().max() > 0.1  # the stated x2 dose would have changed it
