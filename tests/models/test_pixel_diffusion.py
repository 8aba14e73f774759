"""The pixel-space peer of ldm: identity codec, training task, strict weights and the ``pixel-diffusion`` method."""

import json

import pytest
import torch

from cryophase.diffusion.schedule import DiffusionConfig
from cryophase.models.bundle import (PIXEL_DENOISER_NAME, ModelGrid, load_pixel_denoiser, save_denoiser,
                                     save_pixel_denoiser)
from cryophase.models.pixel import PixelCodec, PixelCodecConfig, power_of_two_scale
from cryophase.models.unet import UNet
from cryophase.models.weights import WeightsError
from cryophase.pipeline import LatentPhasePipeline
from cryophase.retrieval.base import get_method
from cryophase.training.data import Conditioner
from cryophase.training.ddp import DistributedContext
from cryophase.training.runs import run
from cryophase.training.tasks import PixelDiffusionTask
from models.tiny import PIXEL_A, SIZE, tiny_data, tiny_pixel_unet_config, tiny_preset, tiny_unet_config

GRID = ModelGrid(SIZE, PIXEL_A)
DIFFUSION = DiffusionConfig(num_train_timesteps=100)


def _codec() -> PixelCodec:
    return PixelCodec(PixelCodecConfig(phase_scale_rad=power_of_two_scale(0.0375)))


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    unet = UNet(tiny_pixel_unet_config())
    save_pixel_denoiser(tmp_path, unet, _codec(), DIFFUSION, "wiener", GRID)
    return tmp_path, unet


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_codec_round_trip_is_exact(dtype):
    codec = _codec()
    assert codec.config.phase_scale_rad == 2.0**-5  # 0.0375 rad (the training phases' sd) -> nearest power of two
    phase = 0.05 * torch.randn(3, 8, 6, generator=torch.Generator().manual_seed(0), dtype=dtype)
    image = codec.encode(phase)
    assert image.shape == (3, 1, 8, 6) and image.dtype == dtype
    assert torch.equal(image[:, 0], phase * 32)
    assert torch.equal(codec.decode(image), phase)


def test_power_of_two_scale_refuses_non_positive():
    assert power_of_two_scale(3.0) == 4.0 and power_of_two_scale(0.7) == 0.5
    with pytest.raises(ValueError, match="positive"):
        power_of_two_scale(0.0)


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    task = PixelDiffusionTask(UNet(tiny_pixel_unet_config()), _codec(), DIFFUSION, Conditioner("wiener"), GRID)
    data = tiny_data(8)
    prepared = task.prepare(data.sample(8, torch.Generator().manual_seed(1)), torch.Generator().manual_seed(2))
    assert prepared["z0"].shape == (8, 1, SIZE, SIZE) and prepared["condition"].shape == (8, 1, SIZE, SIZE)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-3)

    def loss():  # the same timesteps and noise every call
        return task.loss(task.model, prepared, torch.Generator().manual_seed(3))

    before = float(loss().detach())
    for _ in range(3):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert float(loss().detach()) < before


def test_save_load_sample_is_bit_identical(weights):
    folder, unet = weights
    data = tiny_data(3)
    condition = 0.05 * torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    direct = LatentPhasePipeline(_codec(), unet, DIFFUSION)(condition, data.physics, n_steps=3,
                                                             generator=torch.Generator().manual_seed(5))
    codec, loaded, diffusion, method, grid = load_pixel_denoiser(folder)
    assert (codec.config, diffusion, method, grid) == (_codec().config, DIFFUSION, "wiener", GRID)
    again = LatentPhasePipeline(codec, loaded, diffusion)(condition, data.physics, n_steps=3,
                                                          generator=torch.Generator().manual_seed(5))
    assert torch.equal(direct.mean, again.mean)


def test_reconstructor_is_seeded_and_keeps_shapes(weights):
    folder, _ = weights
    data = tiny_data(5)
    method = get_method("pixel-diffusion", weights=folder, n_steps=3, samples=2, batch_size=2)
    assert method.condition_method == "wiener"
    a = method.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(0))
    b = method.reconstruct(data.counts, data.physics, generator=torch.Generator().manual_seed(0))
    assert a.phase.shape == (5, SIZE, SIZE) and a.uncertainty.shape == (5, SIZE, SIZE)
    assert torch.isfinite(a.phase).all() and torch.equal(a.phase, b.phase)


def _edit_json(folder, edit):
    path = folder / f"{PIXEL_DENOISER_NAME}.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_strict_loading_refuses_a_mismatched_denoiser_config(weights):
    folder, _ = weights
    _edit_json(folder, lambda meta: meta["config"].update(base_channels=16))
    with pytest.raises(WeightsError, match="tensors do not match"):
        load_pixel_denoiser(folder)


def test_strict_loading_refuses_an_unknown_codec_field(weights):
    folder, _ = weights
    _edit_json(folder, lambda meta: meta["extra"]["codec"].update(latent_scale=1.0))
    with pytest.raises(WeightsError, match="latent_scale"):
        load_pixel_denoiser(folder)


def test_latent_denoiser_is_not_a_pixel_denoiser(tmp_path):
    save_denoiser(tmp_path, UNet(tiny_unet_config()), DIFFUSION, "wiener", GRID)
    with pytest.raises(WeightsError, match=f"no {PIXEL_DENOISER_NAME}.json"):
        get_method("pixel-diffusion", weights=tmp_path)



def test_shipped_pixel_peer_loads_strictly_beside_the_latent_model():
    from cryophase.models.bundle import default_weights_folder, load_denoiser

    if not (default_weights_folder() / f"{PIXEL_DENOISER_NAME}.json").is_file():
        pytest.skip("no shipped weights in this installation")
    peer = get_method("pixel-diffusion")
    _, _, _, latent_grid, _ = load_denoiser(default_weights_folder())
    assert peer.grid == latent_grid and peer.condition_method == "ml"  # same grid and conditioning as ldm
    assert peer.pipeline.denoiser.config.in_channels == 2 and peer.pipeline.denoiser.config.out_channels == 1


def test_train_pixel_run_writes_loadable_weights(tmp_path):
    preset = tiny_preset(max_steps=2)
    result = run("pixel", preset, tiny_data(16), tmp_path, preset.pixel_loop,
                 DistributedContext(0, 1, torch.device("cpu")), progress=False)
    assert result.step == 2 and (tmp_path / "pixel" / "metrics.csv").is_file()
    codec, unet, _, method, grid = load_pixel_denoiser(tmp_path / "weights")
    assert method == preset.condition_method and grid == GRID
    scale = codec.config.phase_scale_rad
    assert scale == power_of_two_scale(scale)  # fitted and rounded to a power of two
    assert unet.config == tiny_pixel_unet_config()
