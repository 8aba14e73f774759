"""Encode -> sample -> decode: shapes, seeded reproducibility through save/load, K-sample uncertainty."""

import pytest
import torch

from cryophase.diffusion.schedule import DiffusionConfig
from cryophase.models.bundle import ModelGrid, load_denoiser, load_vae, save_denoiser, save_vae
from cryophase.models.unet import UNet, physics_features
from cryophase.models.vae import PhaseVAE
from cryophase.physics.forward import ImagingPhysics
from cryophase.pipeline import Guidance, LatentPhasePipeline, predictive_sd
from models.tiny import tiny_data, tiny_unet_config, tiny_vae_config


@pytest.fixture
def pipeline_parts():
    torch.manual_seed(0)
    return PhaseVAE(tiny_vae_config()), UNet(tiny_unet_config()), DiffusionConfig()


@pytest.mark.parametrize("sampler", ["ddim", "dpm-solver"])
def test_save_load_sample_is_bit_identical(pipeline_parts, tmp_path, sampler):
    vae, unet, diffusion = pipeline_parts
    grid = ModelGrid(16, 3.5)
    save_vae(tmp_path, vae, grid)
    save_denoiser(tmp_path, unet, diffusion, "wiener", grid)
    vae2, _ = load_vae(tmp_path)
    unet2, diffusion2, method, _, _ = load_denoiser(tmp_path)
    assert method == "wiener" and diffusion2 == diffusion
    data = tiny_data(4)
    a = LatentPhasePipeline(vae, unet, diffusion)(data.phase, data.physics, n_steps=5, sampler=sampler,
                                                  generator=torch.Generator().manual_seed(3))
    b = LatentPhasePipeline(vae2, unet2, diffusion2)(data.phase, data.physics, n_steps=5, sampler=sampler,
                                                     generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.mean, b.mean)
    c = LatentPhasePipeline(vae2, unet2, diffusion2)(data.phase, data.physics, n_steps=5, sampler=sampler,
                                                     generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a.mean, c.mean)


def test_k_samples_mean_and_std(pipeline_parts):
    vae, unet, diffusion = pipeline_parts
    data = tiny_data(3)
    out = LatentPhasePipeline(vae, unet, diffusion)(data.phase, data.physics, n_samples=4, n_steps=3,
                                                    generator=torch.Generator().manual_seed(0))
    assert out.samples.shape == (4, 3, 16, 16)
    torch.testing.assert_close(out.mean, out.samples.mean(0))
    torch.testing.assert_close(out.std, out.samples.std(0, correction=1) * (1 + 1 / 4) ** 0.5)
    assert (out.std > 0).all()


@pytest.mark.parametrize("k", [4, 8])
def test_predictive_sd_is_the_spread_of_truth_about_the_sample_mean(k):
    # Truth and K samples drawn i.i.d. from one Gaussian per pixel: a perfect posterior sampler.
    g = torch.Generator().manual_seed(k)
    sigma = 0.1 + torch.rand(20_000, generator=g, dtype=torch.float64)
    truth = sigma * torch.randn(20_000, generator=g, dtype=torch.float64)
    samples = sigma * torch.randn(k, 20_000, generator=g, dtype=torch.float64)
    error = truth - samples.mean(0)
    sd = predictive_sd(samples)
    # E[sd^2] = Var(truth - mean) = sigma^2 (1 + 1/K), pixel by pixel.
    ratio = float((error**2 / sigma**2).mean() / (sd**2 / sigma**2).mean())
    assert abs(ratio - 1) < 0.05
    # (truth - mean) / sd ~ Student's t with K - 1 dof: |t| < t_{0.95, K-1} 90% of the time
    # (t_{0.95,3} = 2.353, t_{0.95,7} = 1.895; NIST/SEMATECH e-Handbook, Table 1.3.6.7.2).
    t95 = {4: 2.353, 8: 1.895}[k]
    coverage = float((error.abs() <= t95 * sd).double().mean())
    assert abs(coverage - 0.90) < 0.01


def test_predictive_sd_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        predictive_sd(torch.zeros(1, 3))


def test_guidance_moves_toward_measurement(pipeline_parts):
    vae, unet, diffusion = pipeline_parts
    data = tiny_data(3)
    pipe = LatentPhasePipeline(vae, unet, diffusion)
    kwargs = dict(n_steps=3, generator=torch.Generator().manual_seed(0))
    plain = pipe(data.phase, data.physics, **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(0)
    guided = pipe(data.phase, data.physics, guidance=Guidance(data.counts, data.physics, 0.5), **kwargs)
    assert torch.isfinite(guided.mean).all()
    assert not torch.equal(plain.mean, guided.mean)


def test_guidance_with_several_samples_uses_each_particles_physics(pipeline_parts):
    # K samples of B particles are stacked K x B: the guidance of the stacked batch must equal that of each sample
    # block with the original (per-particle) guidance, batched == looped (doses differ per particle here).
    vae, unet, diffusion = pipeline_parts
    data = tiny_data(3)
    physics = ImagingPhysics(data.physics.optics, torch.tensor([15.0, 30.0, 60.0], dtype=torch.float64))
    pipe = LatentPhasePipeline(vae, unet, diffusion)
    guidance = Guidance(data.counts, physics, 0.5)
    condition = vae.encode(data.phase)
    zt = torch.randn((6, *condition.shape[1:]), generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)
    features = physics_features(data.physics)
    out, push = pipe._guidance_step(zt, condition.repeat(2, 1, 1, 1), t, features.repeat(2, 1), guidance.repeat(2))
    for k in range(2):
        rows = slice(3 * k, 3 * k + 3)
        out_k, push_k = pipe._guidance_step(zt[rows], condition, t, features, guidance)
        torch.testing.assert_close(out[rows], out_k, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(push[rows], push_k, rtol=1e-4, atol=1e-5)
    guided = pipe(data.phase, data.physics, n_steps=2, n_samples=2, generator=torch.Generator().manual_seed(0),
                  guidance=guidance)
    assert guided.samples.shape == (2, 3, 16, 16) and torch.isfinite(guided.samples).all()
