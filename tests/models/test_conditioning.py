"""The denoiser's condition channels: E(iterative) and, optionally, the measurement and the iterative phase folded
onto the latent grid. Round trips, dose invariance, and the same channels in training and inference."""

import pytest
import torch

from cryophase.diffusion.schedule import DiffusionConfig
from cryophase.errors import CryophaseError
from cryophase.models.bundle import ModelGrid, load_denoiser, load_vae, save_denoiser, save_vae
from cryophase.models.conditioning import ConditioningConfig, condition_channels, measured_contrast
from cryophase.models.unet import UNet, UNetConfig
from cryophase.models.vae import PhaseVAE
from cryophase.models.weights import WeightsError
from cryophase.pipeline import LatentPhasePipeline
from cryophase.retrieval.base import get_method
from cryophase.training.ddp import DistributedContext
from cryophase.training.runs import build_task, run
from models.tiny import tiny_data, tiny_preset, tiny_vae_config

PIXEL = ConditioningConfig(pixel_inputs=True, phase_scale_rad=0.5)
# tiny VAE: 2 latent channels, 4x smaller per side -> z_t (2) + E(iterative) (2) + 2 x 16 folded pixels
PIXEL_UNET = UNetConfig(in_channels=36, out_channels=2, base_channels=8, channel_multipliers=(1, 2), embedding_dim=16)


def test_measured_contrast_does_not_depend_on_the_dose():
    data = tiny_data(3)
    contrast = measured_contrast(data.counts)
    torch.testing.assert_close(measured_contrast(2.0 * data.counts), contrast)
    torch.testing.assert_close(contrast.mean(dim=(-2, -1)), torch.zeros(3), atol=1e-6, rtol=0)
    assert torch.equal(measured_contrast(torch.zeros(1, 4, 4)), -torch.ones(1, 4, 4))  # an empty image stays finite


def test_pixel_inputs_fold_losslessly_onto_the_latent_grid():
    data = tiny_data(2)
    code = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    channels = condition_channels(PIXEL, code, data.phase, data.counts)
    assert channels.shape == (2, 2 + 32, 4, 4) and PIXEL.n_channels(2, 4) == 34
    torch.testing.assert_close(channels[:, :2], code)
    unfolded = torch.nn.functional.pixel_shuffle(channels[:, 2:], 4)  # back to (2, 2, 16, 16)
    torch.testing.assert_close(unfolded[:, 0], measured_contrast(data.counts))
    torch.testing.assert_close(unfolded[:, 1], data.phase / 0.5)
    assert torch.equal(condition_channels(ConditioningConfig(), code, data.phase, None), code)
    with pytest.raises(ValueError, match="pass the counts"):
        condition_channels(PIXEL, code, data.phase, None)
    with pytest.raises(ValueError, match="not on one grid"):
        condition_channels(PIXEL, code, data.phase, data.counts[:, :8, :8])


def test_pixel_conditioned_weights_round_trip_and_reconstruct(tmp_path):
    torch.manual_seed(0)
    grid, diffusion = ModelGrid(16, 3.5), DiffusionConfig(num_train_timesteps=100)
    vae, unet = PhaseVAE(tiny_vae_config()), UNet(PIXEL_UNET)
    save_vae(tmp_path, vae, grid)
    save_denoiser(tmp_path, unet, diffusion, "wiener", grid, PIXEL)
    *_, conditioning = load_denoiser(tmp_path)
    assert conditioning == PIXEL
    data = tiny_data(4)
    pipe = LatentPhasePipeline(vae, unet, diffusion, conditioning)
    with pytest.raises(ValueError, match="pass the counts"):
        pipe(data.phase, data.physics, generator=torch.Generator().manual_seed(0), n_steps=2)
    with pytest.raises(ValueError, match="condition channels"):  # weights used with the wrong conditioning
        LatentPhasePipeline(vae, unet, diffusion)(data.phase, data.physics, generator=torch.Generator(), n_steps=2)
    save_denoiser(tmp_path / "mixed", unet, diffusion, "wiener", grid)  # conditioning entry lost: refused at load
    save_vae(tmp_path / "mixed", vae, grid)
    with pytest.raises(WeightsError, match="denoiser.json.*different runs"):
        get_method("ldm", weights=tmp_path / "mixed")
    method = get_method("ldm", weights=tmp_path, n_steps=2, batch_size=4)
    whole = method.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(1)).phase
    assert whole.shape == (4, 16, 16) and torch.isfinite(whole).all()
    pipe_out = pipe(get_method("wiener").reconstruct(data.counts, data.physics).phase.float(), data.physics,
                    counts=data.counts, generator=torch.Generator().manual_seed(2), n_steps=2, n_samples=2)
    assert pipe_out.samples.shape == (2, 4, 16, 16) and torch.isfinite(pipe_out.mean).all()
    # batched == looped: each particle's condition channels come from its own counts and phase only
    code = vae.encode(data.phase)
    batched = condition_channels(PIXEL, code, data.phase, data.counts)
    for i in range(4):
        torch.testing.assert_close(condition_channels(PIXEL, code[i:i + 1], data.phase[i:i + 1],
                                                      data.counts[i:i + 1]), batched[i:i + 1])


def test_training_with_pixel_inputs_end_to_end(tmp_path):
    preset, data = tiny_preset(max_steps=2), tiny_data(16)
    preset.conditioning = ConditioningConfig(pixel_inputs=True)
    cpu = DistributedContext(0, 1, torch.device("cpu"))
    run("vae", preset, data, tmp_path, preset.vae_loop, cpu, progress=False)
    with pytest.raises(CryophaseError, match="input channels"):  # the tiny denoiser takes [z_t, E(iterative)]
        build_task("ldm", preset, data, tmp_path / "weights", seed=0)
    preset.denoiser = PIXEL_UNET
    run("ldm", preset, data, tmp_path, preset.ldm_loop, cpu, progress=False)
    *_, conditioning = load_denoiser(tmp_path / "weights")
    vae, _ = load_vae(tmp_path / "weights")
    assert conditioning.pixel_inputs and conditioning.phase_scale_rad == vae.config.phase_scale_rad
    out = get_method("ldm", weights=tmp_path / "weights", n_steps=2).reconstruct(
        data.counts[:3], data.physics[:3], generator=torch.Generator().manual_seed(0))
    assert out.phase.shape == (3, 16, 16) and torch.isfinite(out.phase).all()


@pytest.mark.parametrize("name", ["default", "paper"])
def test_every_preset_denoiser_fits_its_vae_and_conditioning(name):
    from cryophase.models.bundle import denoiser_input_channels
    from cryophase.training.presets import get_preset

    preset = get_preset(name)
    vae = PhaseVAE(preset.vae)
    assert preset.denoiser.in_channels == denoiser_input_channels(vae, preset.conditioning)
    assert preset.denoiser.out_channels == preset.vae.latent_channels
