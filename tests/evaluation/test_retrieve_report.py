"""`cryophase report`: the radial power spectrum it plots, and a report of a real retrieve run."""

import pytest
import torch
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.evaluation.retrieve_report import radial_power_spectrum


def test_white_noise_has_a_flat_spectrum_at_its_variance(generator):
    # Parseval: E|F[x]|^2 = H * W * var for white noise, at every ring.
    noise = 2.0 * torch.randn(64, 32, 32, generator=generator, dtype=torch.float64)
    frequency, spectrum = radial_power_spectrum(noise, 2.0)
    assert frequency[0] == pytest.approx(1 / 64) and frequency[-1] == pytest.approx(0.25)
    assert spectrum.mean() == pytest.approx(32 * 32 * 4.0, rel=0.05)
    assert spectrum.max() / spectrum.min() < 1.6


def test_report_of_a_real_retrieve_run(shared_data, tmp_path):
    real = shared_data / "real_particles" / "trpv1"
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["retrieve", str(real / "trpv1_small_stack.star"), "--stack",
                                 str(real / "trpv1_small_stack.mrcs"), "--method", "wiener", "--dose", "30",
                                 "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(out), "--n", "3"])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # particles and power spectra, inlined
    assert "wiener" in html and "10 particles" in html
