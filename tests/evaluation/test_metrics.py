"""Phase metrics and the FRC: invariants, known crossings, noise statistics, batched == looped."""

import math

import pytest
import torch

from cryophase.evaluation import (
    FrcCurves,
    crossing_frequency,
    crossing_resolution_angstrom,
    evaluate_phases,
    fourier_ring_correlation,
    half_bit_threshold,
    image_metrics,
    lowpass,
    normalised_cross_correlation,
    phase_rmse,
    psnr,
    ssim,
)


def _smooth_images(b, n, generator, dtype=torch.float64):
    noise = torch.randn(b, n, n, generator=generator, dtype=dtype)
    return lowpass(noise, 4.0, 1.0)


def test_frc_of_image_with_itself_is_one_at_every_ring(generator):
    x = torch.randn(3, 48, 48, generator=generator, dtype=torch.float64)
    curves = fourier_ring_correlation(x, x)
    assert curves.correlation.shape == (3, 25)
    torch.testing.assert_close(curves.correlation, torch.ones_like(curves.correlation))


def test_frc_is_invariant_to_scale_and_offset(generator):
    x = torch.randn(2, 32, 32, generator=generator, dtype=torch.float64)
    y = x + 0.5 * torch.randn(2, 32, 32, generator=generator, dtype=torch.float64)
    a = fourier_ring_correlation(x, y).correlation
    b = fourier_ring_correlation(x, 3.0 * y + 7.0).correlation
    torch.testing.assert_close(a, b)


def test_frc_of_independent_noise_is_near_zero(generator):
    n = 128
    a = torch.randn(20, n, n, generator=generator, dtype=torch.float64)
    b = torch.randn(20, n, n, generator=generator, dtype=torch.float64)
    curves = fourier_ring_correlation(a, b)
    mean = curves.correlation.mean(dim=0)[1:]
    # Each ring of n_r pixels gives FRC ~ N(0, 1/n_r); the mean over 20 images has sd 1/sqrt(20 n_r).
    bound = 3 / torch.sqrt(curves.n_pixels[1:].to(torch.float64))
    assert (mean.abs() < bound).all()
    # The per-image FRC of a ring of n pixels has sd 1/sqrt(n) (n real products, Hermitian pairs included),
    # the basis of the 1/2-bit criterion: sqrt(n) * FRC over 20 x 64 rings has sd 1 within sampling error.
    z = curves.correlation[:, 1:] * torch.sqrt(curves.n_pixels[1:].to(torch.float64))
    assert float(z.std()) == pytest.approx(1.0, abs=0.1)


def test_ring_pixel_counts_cover_the_inscribed_disc():
    curves = fourier_ring_correlation(torch.zeros(1, 64, 64), torch.zeros(1, 64, 64))
    # Rings of radius r hold about 2 pi r pixels; all of them cover the disc of radius 32.5.
    assert curves.n_pixels[0] == 1
    assert int(curves.n_pixels.sum()) == pytest.approx(math.pi * 32.5**2, rel=0.02)
    # Rings 16..24 together form the annulus 15.5 <= r < 24.5.
    assert int(curves.n_pixels[16:25].sum()) == pytest.approx(math.pi * (24.5**2 - 15.5**2), rel=0.02)


def test_half_bit_threshold_values():
    # van Heel & Schatz (2005) eq. 17: T(1) = 1 and T -> 0.2071/1.2071 = 0.1716 for large n.
    t = half_bit_threshold(torch.tensor([1.0, 100.0, 1e12]))
    assert t[0] == pytest.approx(1.0, abs=1e-4)
    assert t[1] == pytest.approx((0.2071 + 0.19102) / (1.2071 + 0.09102), rel=1e-6)
    assert t[2] == pytest.approx(0.2071 / 1.2071, rel=1e-5)


def test_crossing_is_interpolated_linearly_between_rings():
    n_rings = 33
    f = torch.arange(n_rings, dtype=torch.float64) / 64
    # A straight line from 1 at ring 0 to 0 at ring 32: it reaches 0.5 at ring 16 and 0.143 at ring 27.424.
    corr = (1 - torch.arange(n_rings, dtype=torch.float64) / 32)[None]
    curves = FrcCurves(corr, torch.ones(n_rings, dtype=torch.int64), f)
    assert float(crossing_frequency(curves, 0.5)[0]) == pytest.approx(16.0 / 64, abs=1e-12)
    assert float(crossing_frequency(curves, 0.143)[0]) == pytest.approx(32 * (1 - 0.143) / 64, abs=1e-12)
    # 2 A pixels: 0.5 crossing at 16/64 cycles/px = 1/8 1/A -> 8 A.
    assert float(crossing_resolution_angstrom(curves, 0.5, 2.0)[0]) == pytest.approx(8.0, abs=1e-9)


def test_crossing_uses_the_first_drop_and_nyquist_when_never_below():
    f = torch.arange(5, dtype=torch.float64) / 8
    corr = torch.tensor([[1.0, 0.9, 0.3, 0.8, 0.1], [1.0, 0.9, 0.8, 0.7, 0.6]], dtype=torch.float64)
    curves = FrcCurves(corr, torch.ones(5, dtype=torch.int64), f)
    got = crossing_frequency(curves, 0.5)
    # Image 0: between ring 1 (0.9) and ring 2 (0.3): t = 0.4 / 0.6.
    assert float(got[0]) == pytest.approx((1 + 0.4 / 0.6) / 8, abs=1e-12)
    assert float(got[1]) == pytest.approx(0.5)


def test_crossing_with_a_per_ring_threshold():
    f = torch.arange(4, dtype=torch.float64) / 6
    corr = torch.tensor([[1.0, 0.6, 0.4, 0.2]], dtype=torch.float64)
    threshold = torch.tensor([1.0, 0.5, 0.5, 0.5], dtype=torch.float64)
    curves = FrcCurves(corr, torch.ones(4, dtype=torch.int64), f)
    assert float(crossing_frequency(curves, threshold)[0]) == pytest.approx((1 + 0.5) / 6, abs=1e-12)


def test_ncc_of_affine_copy_is_one(generator):
    x = torch.randn(4, 32, 32, generator=generator, dtype=torch.float64)
    a = torch.tensor([0.1, 2.0, 5.0, 1.0], dtype=torch.float64)[:, None, None]
    b = torch.tensor([-3.0, 0.0, 1.0, 100.0], dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(normalised_cross_correlation(x, a * x + b), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(normalised_cross_correlation(x, -x), -torch.ones(4, dtype=torch.float64))


def test_rmse_and_psnr_ignore_a_constant_phase_offset(generator):
    truth = _smooth_images(3, 32, generator)
    pred = truth + 0.05 * torch.randn(3, 32, 32, generator=generator, dtype=torch.float64)
    offset = torch.tensor([0.3, -2.0, math.pi], dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(phase_rmse(truth, pred + offset), phase_rmse(truth, pred))
    torch.testing.assert_close(psnr(truth, pred + offset), psnr(truth, pred))
    torch.testing.assert_close(ssim(truth, pred + offset), ssim(truth, pred))
    # With zero-mean noise of sd 0.05 the offset-free RMSE is 0.05 within sampling error (1024 pixels).
    assert phase_rmse(truth, pred + offset) == pytest.approx(torch.full((3,), 0.05, dtype=torch.float64), rel=0.1)


def test_psnr_matches_its_definition(generator):
    truth = _smooth_images(2, 32, generator)
    pred = truth + 0.1 * torch.randn(2, 32, 32, generator=generator, dtype=torch.float64)
    diff = (pred - truth) - (pred - truth).mean(dim=(-2, -1), keepdim=True)
    peak = truth.amax(dim=(-2, -1)) - truth.amin(dim=(-2, -1))
    expected = 10 * torch.log10(peak**2 / (diff**2).mean(dim=(-2, -1)))
    torch.testing.assert_close(psnr(truth, pred), expected)


def test_ssim_of_identical_images_is_one_and_drops_with_noise(generator):
    truth = _smooth_images(3, 40, generator)
    torch.testing.assert_close(ssim(truth, truth), torch.ones(3, dtype=torch.float64))
    noisy = truth + 0.5 * truth.std() * torch.randn(3, 40, 40, generator=generator, dtype=torch.float64)
    very_noisy = truth + 2.0 * truth.std() * torch.randn(3, 40, 40, generator=generator, dtype=torch.float64)
    s1, s2 = ssim(truth, noisy), ssim(truth, very_noisy)
    assert (s1 < 0.99).all() and (s2 < s1).all()


def test_lowpass_keeps_low_and_removes_high_frequencies():
    n = 64
    x = torch.arange(n, dtype=torch.float64)
    pixel = 2.0
    # A cosine at 4 cycles per box (32 A period) and one at 24 cycles (5.3 A period).
    low = torch.cos(2 * math.pi * 4 * x / n)[None, None, :].expand(1, n, n)
    high = torch.cos(2 * math.pi * 24 * x / n)[None, None, :].expand(1, n, n)
    filtered = lowpass(low + high + 1.0, 10.0, pixel)
    torch.testing.assert_close(filtered, low + 1.0, atol=1e-10, rtol=0)
    # At the cut-off the raised-cosine edge passes one half: 13 cycles per 64-pixel box at 2 A/px is 128/13 A.
    edge = lowpass(torch.cos(2 * math.pi * 13 * x / n)[None, None, :].expand(1, n, n), 2 * n / 13, pixel)
    torch.testing.assert_close(edge, 0.5 * torch.cos(2 * math.pi * 13 * x / n)[None, None, :].expand(1, n, n),
                               atol=1e-10, rtol=0)


def test_lowpass_per_image_resolution_equals_looped(generator):
    images = torch.randn(3, 32, 32, generator=generator, dtype=torch.float64)
    resolution = torch.tensor([8.0, 12.0, 20.0], dtype=torch.float64)
    pixel = torch.tensor([1.5, 2.0, 3.0], dtype=torch.float64)
    batched = lowpass(images, resolution, pixel)
    looped = torch.cat([lowpass(images[i : i + 1], float(resolution[i]), float(pixel[i])) for i in range(3)])
    torch.testing.assert_close(batched, looped)


def test_batched_metrics_equal_looped(generator):
    truth = _smooth_images(4, 32, generator)
    pred = 0.8 * truth + 0.05 * torch.randn(4, 32, 32, generator=generator, dtype=torch.float64) + 0.2
    batched, curves = image_metrics(truth, pred, 1.7)
    for i in range(4):
        single, single_curves = image_metrics(truth[i : i + 1], pred[i : i + 1], 1.7)
        torch.testing.assert_close(single_curves.correlation[0], curves.correlation[i])
        for name, value in single.items():
            torch.testing.assert_close(value[0], batched[name][i], msg=name)


def test_evaluate_phases_of_perfect_prediction(generator):
    truth = torch.randn(2, 32, 32, generator=generator, dtype=torch.float64)
    result = evaluate_phases(truth, truth + 1.0, 2.0)
    assert result.per_image["rmse_rad"].abs().max() < 1e-12
    torch.testing.assert_close(result.per_image["ncc"], torch.ones(2, dtype=torch.float64))
    # A perfect prediction is resolved to Nyquist (2 pixels = 4 A) at every threshold.
    for name in ("frc_0.5_angstrom", "frc_0.143_angstrom", "frc_half_bit_angstrom"):
        torch.testing.assert_close(result.per_image[name], torch.full((2,), 4.0, dtype=torch.float64))
        assert result.mean_frc_resolutions[name] == pytest.approx(4.0)
    assert result.lowpass_resolution_angstrom == 10.0


def test_metrics_work_in_float32(generator):
    truth = _smooth_images(2, 32, generator).float()
    pred = truth + 0.01
    metrics, curves = image_metrics(truth, pred, 1.0)
    assert all(v.dtype == torch.float32 for v in metrics.values())
    assert curves.correlation.dtype == torch.float32
    assert metrics["rmse_rad"].max() < 1e-5


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        phase_rmse(torch.zeros(2, 8, 8), torch.zeros(2, 8, 9))
    with pytest.raises(ValueError, match="same shape"):
        fourier_ring_correlation(torch.zeros(2, 8, 8), torch.zeros(3, 8, 8))


def test_ssim_with_one_flat_window_is_the_global_formula(generator):
    # Window = whole image with uniform weights: SSIM = (2 mx my + C1)(2 cov + C2) / ((mx^2 + my^2 + C1)(vx + vy + C2))
    # with population statistics of the mean-free images (mx = my = 0), Wang et al. (2004) eq. 13.
    x = torch.randn(2, 16, 16, generator=generator, dtype=torch.float64)
    y = 0.7 * x + 0.3 * torch.randn(2, 16, 16, generator=generator, dtype=torch.float64)
    got = ssim(x, y, sigma_pixels=1e9, window_pixels=16)
    xc, yc = x - x.mean(dim=(1, 2), keepdim=True), y - y.mean(dim=(1, 2), keepdim=True)
    vx, vy, cov = (xc**2).mean(dim=(1, 2)), (yc**2).mean(dim=(1, 2)), (xc * yc).mean(dim=(1, 2))
    big_l = x.amax(dim=(1, 2)) - x.amin(dim=(1, 2))
    c1, c2 = (0.01 * big_l) ** 2, (0.03 * big_l) ** 2
    expected = c1 * (2 * cov + c2) / (c1 * (vx + vy + c2))
    torch.testing.assert_close(got, expected)


def test_ssim_local_statistics_match_a_direct_convolution(generator):
    import torch.nn.functional as F

    from cryophase.evaluation.metrics import _blur_valid, _gaussian_window

    images = torch.randn(3, 20, 24, generator=generator, dtype=torch.float64)
    g = _gaussian_window(1.5, 11, dtype=torch.float64, device=images.device)
    direct = F.conv2d(images[:, None], (g[:, None] * g[None, :])[None, None])[:, 0]
    torch.testing.assert_close(_blur_valid(images, g[:, None] * g[None, :]), direct)


def test_frc_agrees_with_torch_fourier_shell_correlation(generator):
    # The library spreads each pixel over two rings (linear weights) where cryophase uses hard rings, so the
    # curves agree to within a few hundredths where the images hold signal, not exactly.
    from torch_fourier_shell_correlation import fourier_ring_correlation as library_frc

    a = lowpass(torch.randn(8, 64, 64, generator=generator, dtype=torch.float64), 6.0, 1.0, edge_width_rings=20)
    b = a + 0.3 * torch.randn(8, 64, 64, generator=generator, dtype=torch.float64)
    ours = fourier_ring_correlation(a, b).correlation.mean(dim=0)
    theirs = library_frc(a, b).mean(dim=0)
    assert ours.shape == theirs.shape
    assert float((ours - theirs)[1:16].abs().max()) < 0.05
