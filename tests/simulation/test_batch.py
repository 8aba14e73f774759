"""simulate_batch: flux, truth vs nuisances, batched == looped, determinism, device-agnostic dtype."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cryophase.physics.forward import intensity
from cryophase.physics.optics import Optics
from cryophase.simulation import SimulationConfig, simulate_batch
from cryophase.simulation.dataset import particle_generators, rotation_to_relion_euler_degrees
from cryophase.specimens.rotations import euler_relion_to_matrix

SMALL = SimulationConfig(box_size=32, pixel_size_angstrom=3.0)


def test_flux_pure_phase_object_in_vacuum_is_one():
    g = torch.Generator().manual_seed(0)
    phase = 0.5 * torch.randn(3, 48, 48, generator=g, dtype=torch.float64)
    optics = Optics.create(defocus_u_angstrom=[8000.0, 15000.0, 25000.0], amplitude_contrast=0.0, dtype=torch.float64)
    torch.testing.assert_close(intensity(phase, optics).mean(dim=(1, 2)), torch.ones(3, dtype=torch.float64))


def test_flux_through_the_simulator(small_specimens):
    config = replace(SMALL, ice=False, amplitude_contrast_choices=(0.0,), b_factor_range_a2=(0.0, 0.0),
                     radiation_damage=False, neighbour_probability=0.0, contamination_probability=0.0,
                     detector="ideal", noiseless=True, canvas_factor=1.0)
    batch = simulate_batch(small_specimens, config, 4, torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(batch.expected_counts.mean(dim=(1, 2)), batch.physics.counts_per_pixel)
    assert torch.equal(batch.counts, batch.expected_counts)


def test_energy_filter_removes_inelastic_electrons(small_specimens):
    base = replace(SMALL, amplitude_contrast_choices=(0.0,), b_factor_range_a2=(0.0, 0.0), radiation_damage=False,
                   ice_background=False, neighbour_probability=0.0, contamination_probability=0.0,
                   detector="ideal", noiseless=True, canvas_factor=1.0)
    plain = simulate_batch(small_specimens, base, 3, torch.Generator().manual_seed(2), dtype=torch.float64)
    filtered = simulate_batch(small_specimens, replace(base, energy_filter=True), 3,
                              torch.Generator().manual_seed(2), dtype=torch.float64)
    from cryophase.specimens.ice import coherent_fraction
    frac = coherent_fraction(plain.parameters.ice_thickness_angstrom, plain.physics.optics.voltage_kv)
    torch.testing.assert_close(plain.expected_counts.mean(dim=(1, 2)), plain.physics.counts_per_pixel)
    torch.testing.assert_close(filtered.expected_counts.mean(dim=(1, 2)), frac * plain.physics.counts_per_pixel)


def test_truth_excludes_ice_background_neighbours_and_contamination(small_specimens):
    busy = replace(SMALL, neighbour_probability=1.0, contamination_probability=1.0)
    clean = replace(SMALL, ice_background=False, neighbour_probability=0.0, contamination_probability=0.0)
    a = simulate_batch(small_specimens, busy, 4, torch.Generator().manual_seed(3))
    b = simulate_batch(small_specimens, clean, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a.phase, b.phase)
    assert a.parameters.neighbour_present.all() and not b.parameters.neighbour_present.any()
    assert not torch.allclose(a.expected_counts, b.expected_counts, rtol=1e-3)
    assert not torch.equal(a.counts, b.counts)
    # The truth is the particle relative to the ice; in vacuum it is stronger by sigma_e V_ice t_excluded.
    vac = simulate_batch(small_specimens, replace(clean, ice=False), 4, torch.Generator().manual_seed(3))
    assert float(vac.phase.sum()) > float(b.phase.sum()) > 0


def test_batched_equals_looped_with_per_particle_generators(small_specimens):
    config = replace(SMALL, neighbour_probability=0.5, contamination_probability=0.5)
    batched = simulate_batch(small_specimens, config, 5, particle_generators(11, 0, 5), dtype=torch.float64)
    for i in range(5):
        one = simulate_batch(small_specimens, config, 1, particle_generators(11, i, i + 1), dtype=torch.float64)
        torch.testing.assert_close(one.phase[0], batched.phase[i], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(one.counts[0], batched.counts[i], rtol=1e-9, atol=1e-9)
        assert float(one.physics.dose_e_per_a2[0]) == float(batched.physics.dose_e_per_a2[i])


def test_same_generator_state_same_batch_and_ranges(small_specimens):
    a = simulate_batch(small_specimens, SMALL, 64, torch.Generator().manual_seed(4))
    b = simulate_batch(small_specimens, SMALL, 64, torch.Generator().manual_seed(4))
    assert torch.equal(a.counts, b.counts) and torch.equal(a.phase, b.phase)
    o = a.physics.optics
    assert set(o.voltage_kv.tolist()) <= {200.0, 300.0}
    assert torch.all((o.defocus_mean_angstrom >= 5000) & (o.defocus_mean_angstrom <= 30000))
    assert torch.all((o.defocus_u_angstrom - o.defocus_v_angstrom).abs() <= 500 + 1e-3)
    assert torch.all((a.physics.dose_e_per_a2 >= 10) & (a.physics.dose_e_per_a2 <= 80))
    assert a.phase.shape == a.counts.shape == (64, 32, 32)
    assert torch.isfinite(a.counts).all()
    # Protein is dark in counts on average where the truth phase is high (underfocus, low frequencies).
    relative = a.expected_counts / a.physics.counts_per_pixel[:, None, None] - 1
    inner = a.phase > 0.5 * a.phase.amax(dim=(1, 2), keepdim=True)
    assert float(relative[inner].mean()) < float(relative[~inner].mean())


def test_relion_euler_round_trip():
    g = torch.Generator().manual_seed(9)
    from cryophase.simulation.batch import random_rotations
    rot = random_rotations(torch.randn(50, 4, generator=g, dtype=torch.float64))
    angles = torch.as_tensor(rotation_to_relion_euler_degrees(rot))
    back = euler_relion_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    torch.testing.assert_close(back, rot, rtol=0, atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda(small_specimens):
    g = torch.Generator(device="cuda").manual_seed(0)
    batch = simulate_batch(small_specimens, SMALL, 8, g, device="cuda")
    assert batch.counts.device.type == "cuda" and torch.isfinite(batch.counts).all()
