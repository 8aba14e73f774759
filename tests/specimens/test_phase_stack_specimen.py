"""A user's phase stack (.mrcs, radians) simulates like any specimen: the truth is the given phase."""

import pytest
import torch

from cryophase.io.mrc import write_stack
from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.specimens.registry import load_specimens


def _blob_stack(n=3, box=40):
    yy, xx = torch.meshgrid(torch.arange(box) - box // 2, torch.arange(box) - box // 2, indexing="ij")
    widths = torch.tensor([3.0, 5.0, 7.0])[:n]
    return 0.2 * torch.exp(-(yy**2 + xx**2)[None] / (2 * widths[:, None, None] ** 2))


def test_phase_stack_truth_is_the_given_phase_at_300kv(tmp_path, generator):
    phases = _blob_stack()
    write_stack(tmp_path / "phi.mrcs", phases, 3.5)
    specimens = load_specimens([str(tmp_path / "phi.mrcs")], generator)
    assert len(specimens) == 3  # one specimen per image
    config = SimulationConfig(box_size=40, pixel_size_angstrom=3.5, voltage_choices_kv=(300.0,), shift_sd_pixels=0.0,
                              ice=False, neighbour_probability=0.0, contamination_probability=0.0)
    batch = simulate_batch(specimens, config, 6, generator)
    chosen = batch.parameters.specimen_index
    torch.testing.assert_close(batch.phase, phases[chosen], atol=2e-4, rtol=0)
    assert torch.isfinite(batch.counts).all()


def test_phase_stack_scales_with_sigma_at_200kv(tmp_path, generator):
    from cryophase.conventions import interaction_constant_rad_per_volt_angstrom as sigma

    phases = _blob_stack(1)
    write_stack(tmp_path / "phi.mrcs", phases, 3.5)
    specimens = load_specimens([str(tmp_path / "phi.mrcs")], generator)
    config = SimulationConfig(box_size=40, pixel_size_angstrom=3.5, voltage_choices_kv=(200.0,), shift_sd_pixels=0.0,
                              ice=False, neighbour_probability=0.0, contamination_probability=0.0)
    batch = simulate_batch(specimens, config, 2, generator)
    ratio = float(batch.phase.sum() / (2 * phases.sum()))
    assert ratio == pytest.approx(float(sigma(200.0) / sigma(300.0)), rel=1e-3)
