"""``cryophase evaluate``: JSON table on stdout and in metrics.json, FRC plot, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.io.mrc import write_stack

runner = CliRunner()


@pytest.fixture
def stacks(tmp_path, generator):
    truth = torch.randn(4, 64, 64, generator=generator)
    noisy = truth + 0.5 * torch.randn(4, 64, 64, generator=generator) + 3.0  # offset: unobservable
    write_stack(tmp_path / "truth.mrcs", truth, 2.0)
    write_stack(tmp_path / "pred.mrcs", noisy, 2.0)
    write_stack(tmp_path / "perfect.mrcs", truth - 1.0, 2.0)
    return tmp_path


def _evaluate(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_evaluate_writes_table_and_plot(stacks):
    out = stacks / "eval"
    result = _evaluate("--truth", stacks / "truth.mrcs", "--pred", stacks / "pred.mrcs", "--out", out)
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert table == json.loads((out / "metrics.json").read_text())
    assert (out / "frc.png").stat().st_size > 10_000
    assert table["n_images"] == 4 and len(table["per_image"]) == 4
    assert table["pixel_size_angstrom"] == 2.0 and table["lowpass_resolution_angstrom"] == 10.0
    # White-noise truth plus noise of half its sd: NCC = 1 / sqrt(1 + 0.25) = 0.894, RMSE = 0.5 rad.
    assert table["mean"]["ncc"] == pytest.approx(0.894, abs=0.01)
    assert table["mean"]["rmse_rad"] == pytest.approx(0.5, rel=0.03)
    # Flat spectra: FRC ~ 0.8 at every ring, above every threshold, so resolved to Nyquist (4 A).
    assert table["mean_curve_frc_angstrom"]["frc_0.143_angstrom"] == pytest.approx(4.0)
    # After the 10 A low-pass nothing correlates beyond the filter's edge (10 A, +1 ring = 9.3 A; rings are
    # hard bins of half a ring either side).
    low = table["mean_curve_frc_angstrom_lowpass"]["frc_0.5_angstrom"]
    assert 8.5 < low < 10.0
    assert table["settings"]["lowpass_resolution_angstrom"] == 10.0
    assert len(table["frc_curve"]["mean"]) == 33


def test_perfect_prediction_with_offset(stacks):
    result = _evaluate("--truth", stacks / "truth.mrcs", "--pred", stacks / "perfect.mrcs", "--lowpass-angstrom", 8)
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert table["mean"]["rmse_rad"] < 1e-5 and table["mean"]["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert table["mean"]["ncc"] == pytest.approx(1.0, abs=1e-6)
    assert table["lowpass_resolution_angstrom"] == 8.0


def test_mismatched_stacks_are_clear_errors(stacks, generator):
    write_stack(stacks / "three.mrcs", torch.randn(3, 64, 64, generator=generator), 2.0)
    write_stack(stacks / "small.mrcs", torch.randn(4, 32, 32, generator=generator), 2.0)
    write_stack(stacks / "other_pixel.mrcs", torch.randn(4, 64, 64, generator=generator), 3.0)
    result = _evaluate("--truth", stacks / "truth.mrcs", "--pred", stacks / "three.mrcs")
    assert result.exit_code == 2 and "holds 4 images" in result.output and "holds 3" in result.output
    result = _evaluate("--truth", stacks / "truth.mrcs", "--pred", stacks / "small.mrcs")
    assert result.exit_code == 2 and "64x64" in result.output and "32x32" in result.output
    result = _evaluate("--truth", stacks / "truth.mrcs", "--pred", stacks / "other_pixel.mrcs")
    assert result.exit_code == 2 and "--pixel-size" in result.output
    assert _evaluate("--truth", stacks / "truth.mrcs", "--pred", stacks / "other_pixel.mrcs",
                     "--pixel-size", 2.0).exit_code == 0
    result = _evaluate("--truth", stacks / "absent.mrcs", "--pred", stacks / "pred.mrcs")
    assert result.exit_code == 2 and "absent.mrcs: no such file" in result.output


def test_evaluate_refuses_to_overwrite(stacks):
    out = stacks / "eval"
    args = ["--truth", stacks / "truth.mrcs", "--pred", stacks / "pred.mrcs", "--out", out]
    assert _evaluate(*args).exit_code == 0
    result = _evaluate(*args)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert _evaluate(*args, "--overwrite").exit_code == 0

