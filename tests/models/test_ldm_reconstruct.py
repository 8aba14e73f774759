"""The ``ldm`` and ``regression`` reconstructors with tiny random weights saved to a temporary folder."""

import pytest
import torch

from cryophase.models.bundle import ModelGrid, save_denoiser, save_regressor, save_vae
from cryophase.models.grid import from_model_grid, to_model_grid
from cryophase.models.regression import PhaseRegressor
from cryophase.models.unet import UNet
from cryophase.models.vae import PhaseVAE
from cryophase.models.weights import WeightsError
from cryophase.physics.forward import ImagingPhysics
from cryophase.physics.optics import Optics
from cryophase.retrieval.base import get_method
from cryophase.retrieval.model_grid import counts_on_model_grid, model_grid_notes, with_measured_dose
from models.tiny import tiny_data, tiny_preset, tiny_regression_config, tiny_unet_config, tiny_vae_config


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    preset = tiny_preset()
    grid = ModelGrid(16, 3.5)
    save_vae(tmp_path, PhaseVAE(tiny_vae_config()), grid)
    save_denoiser(tmp_path, UNet(tiny_unet_config()), preset.diffusion, "wiener", grid)
    save_regressor(tmp_path, PhaseRegressor(tiny_regression_config()), "wiener", grid)
    return tmp_path


def test_ldm_same_grid_shapes_and_uncertainty(weights):
    data = tiny_data(5)
    method = get_method("ldm", weights=weights, n_steps=3, samples=3, batch_size=2)
    result = method.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(0))
    assert result.phase.shape == (5, 16, 16) and result.uncertainty.shape == (5, 16, 16)
    assert torch.isfinite(result.phase).all() and (result.uncertainty >= 0).all()
    again = method.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(0))
    assert torch.equal(result.phase, again.phase)


def test_ldm_other_box_and_pixel_size(weights):
    g = torch.Generator().manual_seed(0)
    physics = ImagingPhysics(Optics.create(defocus_u_angstrom=[12000.0, 20000.0], pixel_size_angstrom=2.0),
                             torch.tensor([20.0, 40.0]))
    counts = torch.poisson(torch.tensor([20.0, 40.0])[:, None, None] * 4.0 * torch.ones(2, 24, 20), generator=g)
    method = get_method("ldm", weights=weights, n_steps=2)
    seen = []
    condition = method._condition.reconstruct

    def recording(counts, physics, **kwargs):  # the conditioning method must run on the model's grid
        seen.append((tuple(counts.shape), physics.optics.pixel_size_angstrom.tolist(), float(counts.mean())))
        return condition(counts, physics, **kwargs)

    method._condition.reconstruct = recording
    result = method.reconstruct(counts, physics, generator=g)
    assert result.phase.shape == (2, 24, 20) and result.uncertainty is None
    assert torch.isfinite(result.phase).all()
    (shape, pixel, mean_counts), = seen
    assert shape == (2, 16, 16) and pixel == [3.5, 3.5]
    assert mean_counts == pytest.approx(30.0 * 3.5**2, rel=0.02)  # the mean dose, 30 e/A^2, on 12.25 A^2 pixels


def test_regression_reconstruct(weights):
    data = tiny_data(3)
    result = get_method("regression", weights=weights).reconstruct(data.counts, data.physics)
    assert result.phase.shape == (3, 16, 16) and torch.isfinite(result.phase).all()


def test_ldm_refuses_other_condition_method(weights):
    with pytest.raises(ValueError, match="trained on 'wiener'"):
        get_method("ldm", weights=weights, condition_method="raf")


def test_ldm_missing_weights_message(tmp_path):
    with pytest.raises(WeightsError, match="vae.json"):
        get_method("ldm", weights=tmp_path)


def test_model_grid_round_trip_same_pixel_size():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 12, 10, generator=g)
    there = to_model_grid(images, 3.5, 3.5, 16)
    assert there.shape == (2, 16, 16)
    torch.testing.assert_close(from_model_grid(there, 3.5, 3.5, (12, 10)), images)


def test_model_grid_rescale_keeps_band_limited_image():
    # A low-frequency cosine survives Fourier rescaling 2.0 -> 4.0 A/px and back.
    y = torch.arange(32, dtype=torch.float32)
    images = torch.cos(2 * torch.pi * 2 * y / 32)[None, :, None].expand(1, 32, 32).contiguous()
    there = to_model_grid(images, 2.0, 4.0, 16)
    back = from_model_grid(there, 2.0, 4.0, (32, 32))
    torch.testing.assert_close(back, images, atol=1e-4, rtol=1e-4)


def test_ldm_refinement_lowers_the_poisson_nll_of_the_mean(weights):
    data = tiny_data(4)
    plain = get_method("ldm", weights=weights, n_steps=2, samples=2)
    refined = get_method("ldm", weights=weights, n_steps=2, samples=2, refine_iterations=10)
    a = plain.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(0))
    b = refined.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(0))
    nll = b.history["poisson_nll"]  # row 0 scores the ldm mean itself (clamped at zero by ml's positivity)
    assert nll.shape == (10, 4) and (nll[-1] < nll[0]).all()
    assert torch.equal(a.uncertainty, b.uncertainty)  # the spread of the samples is kept
    with pytest.raises(ValueError, match="refine_iterations"):
        get_method("ldm", weights=weights, refine_iterations=-1)


def test_counts_on_model_grid_keeps_the_dose_per_square_angstrom():
    # Uniform beam at 2.0 A/px, 24 x 20 px -> 16 x 16 at 4.0 A/px: every pixel (padding included: empty ice)
    # holds dose * 4.0**2 electrons, and the physics is the same but for the pixel size.
    dose = torch.tensor([20.0, 40.0])
    physics = ImagingPhysics(Optics.create(defocus_u_angstrom=[12000.0, 20000.0], pixel_size_angstrom=2.0), dose)
    counts = torch.ones(2, 24, 20, dtype=torch.float16) * (dose * 4.0)[:, None, None].half()
    model_counts, model_physics = counts_on_model_grid(counts, physics, ModelGrid(16, 4.0))
    assert model_counts.shape == (2, 16, 16) and model_counts.dtype == torch.float32
    torch.testing.assert_close(model_counts, (dose * 16.0)[:, None, None].expand(2, 16, 16))
    torch.testing.assert_close(model_physics.optics.pixel_size_angstrom, torch.tensor([4.0, 4.0]))
    torch.testing.assert_close(model_physics.optics.defocus_u_angstrom, physics.optics.defocus_u_angstrom)
    torch.testing.assert_close(model_physics.dose_e_per_a2, dose)


def test_counts_on_model_grid_is_the_identity_on_the_model_grid():
    data = tiny_data(3)
    pixel = float(data.physics.optics.pixel_size_angstrom[0])
    model_counts, _ = counts_on_model_grid(data.counts, data.physics, ModelGrid(data.counts.shape[-1], pixel))
    torch.testing.assert_close(model_counts, data.counts.float())


def test_counts_on_model_grid_refuses_mixed_pixel_sizes():
    physics = ImagingPhysics(Optics.create(defocus_u_angstrom=[1e4, 1e4], pixel_size_angstrom=[1.0, 2.0]),
                             torch.tensor([30.0, 30.0]))
    with pytest.raises(ValueError, match="one pixel size"):
        counts_on_model_grid(torch.ones(2, 8, 8), physics, ModelGrid(16, 4.0))


def test_model_grid_notes_say_when_particles_do_not_fit():
    grid = ModelGrid(64, 3.5)
    assert model_grid_notes((64, 64), 3.5, grid) == []
    assert model_grid_notes((68, 68), 3.4, grid) == []  # a 231 A box and a 3.4 A pixel: within 5%
    cut, fine = model_grid_notes((400, 400), 1.06, grid)
    assert "424 A wide" in cut and "central 224 A" in cut
    assert "nothing finer than 7 A" in fine


def test_learned_methods_measure_the_dose_from_the_counts(weights):
    # The measured dose is the mean count over the pixel area (the expected one to within Poisson noise; these
    # strong 0.5 rad blobs absorb a few %), and a stated dose off by x2 (or x0.5) reaches neither the
    # conditioning nor the networks.
    data = tiny_data(4)
    measured = with_measured_dose(data.counts, data.physics).dose_e_per_a2
    expected = data.physics.expected_counts(data.phase).mean(dim=(-2, -1)) / 3.5**2
    torch.testing.assert_close(measured, expected.to(measured), rtol=0.01, atol=0)
    for factor in (0.5, 2.0):
        wrong = ImagingPhysics(data.physics.optics, data.physics.dose_e_per_a2 * factor)
        torch.testing.assert_close(with_measured_dose(data.counts, wrong).dose_e_per_a2, measured)
        for name, options in (("regression", {}), ("ldm", {"n_steps": 2})):
            method = get_method(name, weights=weights, **options)
            right = method.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(0))
            off = method.reconstruct(data.counts, wrong, generator=torch.Generator().manual_seed(0))
            torch.testing.assert_close(off.phase, right.phase)
    empty = with_measured_dose(torch.zeros(4, 16, 16), data.physics)  # no counts: the stated dose is kept
    torch.testing.assert_close(empty.dose_e_per_a2, data.physics.dose_e_per_a2)
