"""Denoiser and regression peer: shapes, and one optimiser step lowers the loss on a fixed batch."""

import pytest
import torch

from cryophase.diffusion.schedule import DiffusionConfig, NoiseSchedule
from cryophase.models.regression import PhaseRegressor
from cryophase.models.unet import UNet
from models.tiny import tiny_regression_config, tiny_unet_config


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_predict_z0_inverts_target(prediction_type):
    schedule = NoiseSchedule(DiffusionConfig(prediction_type=prediction_type))
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(5, 2, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(5, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 900, 999])
    zt = schedule.add_noise(z0, noise, t)
    torch.testing.assert_close(schedule.predict_z0(zt, schedule.target(z0, noise, t), t), z0)


def _step_lowers(model, loss_fn):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = float(loss_fn().detach())
    for _ in range(3):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    return before, float(loss_fn().detach())


def test_denoiser_step_lowers_loss():
    torch.manual_seed(0)
    unet = UNet(tiny_unet_config())
    schedule = NoiseSchedule(DiffusionConfig())
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(8, 2, 8, 8, generator=g)
    cond = z0 + 0.3 * torch.randn(8, 2, 8, 8, generator=g)
    noise = torch.randn(8, 2, 8, 8, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    feats = torch.zeros(8, 3)

    def loss():
        out = unet(torch.cat([schedule.add_noise(z0, noise, t), cond], 1), t, feats)
        return torch.nn.functional.mse_loss(out, schedule.target(z0, noise, t))

    before, after = _step_lowers(unet, loss)
    assert after < before
    assert unet(torch.zeros(3, 4, 8, 8), torch.tensor([1, 2, 3]), torch.zeros(3, 3)).shape == (3, 2, 8, 8)


def test_regression_step_lowers_loss():
    torch.manual_seed(0)
    reg = PhaseRegressor(tiny_regression_config())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, 16, 16, generator=g)
    y = x[:, 1] * 0.5
    feats = torch.zeros(8, 3)
    before, after = _step_lowers(reg, lambda: torch.nn.functional.mse_loss(reg(x, feats), y))
    assert after < before


def test_unet_refuses_indivisible_size():
    unet = UNet(tiny_unet_config())
    with pytest.raises(ValueError, match="not divisible"):
        unet(torch.zeros(1, 4, 7, 7), torch.tensor([1]), torch.zeros(1, 3))
