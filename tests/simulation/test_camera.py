"""Detector MTF / DQE, detector noise and the radiation-damage envelope."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import starfile
import torch

from cryophase.physics.camera import (
    DETECTORS,
    critical_exposure_e_per_a2,
    detector_expected_counts,
    detector_from_name_or_file,
    dqe,
    mtf,
    radiation_damage_envelope,
    read_relion_mtf,
    sample_detector_counts,
)
from cryophase.physics.detector import sample_counts


@pytest.mark.parametrize("name", ["k2", "k3", "falcon4", "ideal"])
def test_mtf_dqe_shapes_and_published_values(name):
    det = DETECTORS[name]
    n = 64
    m = mtf(det, (n, n), dtype=torch.float64)
    d = dqe(det, (n, n), dtype=torch.float64)
    assert m[0, 0] == pytest.approx(1.0)
    assert d[0, 0] == pytest.approx(det.dqe_zero)
    # Along the x axis, the Nyquist column is index n // 2.
    axis = m[0, : n // 2 + 1]
    assert torch.all(axis[1:] < axis[:-1])
    assert torch.all(d[0, 1 : n // 2 + 1] <= d[0, : n // 2])
    assert float(m[0, n // 2]) == pytest.approx(det.mtf_nyquist, abs=1e-6)
    assert float(d[0, n // 2]) == pytest.approx(det.dqe_nyquist, abs=1e-6)


def test_published_values_at_nyquist():
    # An ideal counting detector is limited by its square pixel: MTF(Nyquist) = sinc(pi / 2) = 2 / pi
    # (McMullan et al. 2014 Ultramicroscopy 147:156, section 2).
    ideal = mtf(DETECTORS["ideal"], (32, 32), dtype=torch.float64)
    assert float(ideal[0, 16]) == pytest.approx(2 / math.pi, abs=1e-9)
    # K2 Summit counting at 300 keV: MTF(N) ~ 0.5 and DQE(0) ~ 0.77 (McMullan et al. 2014, figs. 3-4),
    # and the K2 DQE falls below the Falcon's at high frequency (their abstract).
    k2 = DETECTORS["k2"]
    assert 0.4 <= k2.mtf_nyquist <= 0.6
    assert 0.7 <= k2.dqe_zero <= 0.85
    assert k2.dqe_nyquist < DETECTORS["falcon4"].dqe_nyquist


def test_relion_mtf_file_round_trip(tmp_path):
    freq = np.linspace(0, 0.5, 11)
    values = np.exp(-((freq / 0.4) ** 2))
    path = tmp_path / "mtf_test_300kV.star"
    starfile.write({"mtf": pd.DataFrame({"rlnResolutionInversePixel": freq, "rlnMtfValue": values})}, path)
    f, v = read_relion_mtf(path)
    np.testing.assert_allclose(f, freq)
    det = detector_from_name_or_file(str(path))
    m = mtf(det, (20, 20), dtype=torch.float64)
    # Column 5 of a 20-pixel grid is 0.25 cycles/pixel: the table value (interpolated linearly).
    assert float(m[0, 5]) == pytest.approx(float(np.interp(0.25, freq, values)), abs=1e-5)
    with pytest.raises(ValueError, match="unknown detector"):
        detector_from_name_or_file("no-such-camera")


def test_sample_counts_poisson_mean_and_variance():
    g = torch.Generator().manual_seed(3)
    expected = torch.full((8, 64, 64), 7.5, dtype=torch.float64)
    counts = sample_counts(expected, g)
    assert float(counts.mean()) == pytest.approx(7.5, rel=0.01)
    assert float(counts.var()) == pytest.approx(7.5, rel=0.03)
    assert torch.equal(counts, counts.round())


def test_detector_noise_power_spectrum_is_mtf2_over_dqe():
    g = torch.Generator().manual_seed(5)
    det = DETECTORS["k3"]
    level = 50.0
    expected = torch.full((200, 32, 32), level, dtype=torch.float64)
    counts = sample_detector_counts(expected, det, g)
    assert torch.allclose(detector_expected_counts(expected, det), expected)
    assert float(counts.mean()) == pytest.approx(level, rel=2e-3)
    nps = (torch.fft.fft2(counts - level).abs() ** 2).mean(dim=0) / (32 * 32)
    model = level * mtf(det, (32, 32), dtype=torch.float64) ** 2 / dqe(det, (32, 32), dtype=torch.float64)
    ratio = (nps / model)[1:, 1:]
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.02)
    # Low frequencies: variance above Poisson by 1 / DQE(0).
    low_mtf2 = float(mtf(det, (32, 32))[0, 1:4].pow(2).mean())
    assert float(nps[0, 1:4].mean()) == pytest.approx(level / det.dqe_zero * low_mtf2, rel=0.15)


def test_radiation_damage_envelope_grant_grigorieff():
    # N_e(k) = 0.245 k^-1.665 + 2.81 (Grant & Grigorieff 2015 eLife 4:e06980, eq. 3): 5.27 e/A^2 at 4 A.
    k = torch.tensor([0.25], dtype=torch.float64)
    assert float(critical_exposure_e_per_a2(k)) == pytest.approx(0.245 * 0.25**-1.665 + 2.81, rel=1e-9)
    pixel = torch.tensor([2.0], dtype=torch.float64)  # Nyquist 1/4 A: column 8 of a 16 grid
    env = radiation_damage_envelope((16, 16), pixel, torch.tensor([40.0], dtype=torch.float64),
                                    torch.tensor([300.0], dtype=torch.float64))
    ne = 0.245 * 0.25**-1.665 + 2.81
    assert float(env[0, 0, 8]) == pytest.approx(2 * ne / 40 * (1 - math.exp(-40 / (2 * ne))), rel=1e-6)
    assert float(env[0, 0, 0]) == 1.0
    more = radiation_damage_envelope((16, 16), pixel, torch.tensor([80.0], dtype=torch.float64),
                                     torch.tensor([300.0], dtype=torch.float64))
    assert torch.all(more[0, 0, 1:] < env[0, 0, 1:])


def test_binned_images_see_the_low_frequency_part_of_the_mtf():
    det = DETECTORS["k2"]
    fine = mtf(det, (64, 64), dtype=torch.float64)
    binned = mtf(det, (32, 32), dtype=torch.float64, binning=2.0)
    # Nyquist of the 2x binned image is half the detector's Nyquist: column 16 of 32 = column 16 of 64.
    assert float(binned[0, 16]) == pytest.approx(float(fine[0, 16]), rel=1e-12)
    assert float(dqe(det, (32, 32), dtype=torch.float64, binning=2.0)[0, 16]) == pytest.approx(
        det.dqe_zero * (det.dqe_nyquist / det.dqe_zero) ** 0.25, rel=1e-12)
    with pytest.raises(ValueError, match="binning"):
        mtf(det, (8, 8), binning=0.5)
