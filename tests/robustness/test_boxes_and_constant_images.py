"""Classical methods take odd and non-square boxes; a constant image gets a zero phase and a warning."""

from __future__ import annotations

import json

import pytest
import torch

from robust_inputs import invoke
from cryophase.io.mrc import read_stack, write_stack

CLASSICAL = ("wiener", "phase-flip", "gs", "raf", "hio", "raar", "ml")


@pytest.mark.parametrize("box", [(32, 24), (31, 31), (31, 26)], ids=["non-square", "odd", "odd-non-square"])
@pytest.mark.parametrize("method", CLASSICAL)
def test_classical_methods_take_any_box(method, box, sim, tmp_path):
    images, pixel = read_stack(sim / "particles.mrcs")
    h, w = box
    write_stack(sim / "cut.mrcs", images[:, :h, :w], pixel)
    out = tmp_path / "out"
    result = invoke(["retrieve", sim / "particles.star", "--method", method, "--stack", sim / "cut.mrcs",
                     "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    phases, out_pixel = read_stack(out / "phases.mrcs")
    assert phases.shape == (4, h, w) and out_pixel == pytest.approx(pixel)
    assert torch.isfinite(phases).all() and phases.abs().max() > 0


@pytest.mark.parametrize("method", CLASSICAL)
def test_constant_image_gets_zero_phase_and_a_note(method, sim, tmp_path):
    images, pixel = read_stack(sim / "particles.mrcs")
    images[2] = images[2].mean()
    write_stack(sim / "particles.mrcs", images, pixel)
    out = tmp_path / "out"
    result = invoke(["retrieve", sim / "particles.star", "--method", method, "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "constant images with no contrast (particle 3)" in result.stderr
    phases, _ = read_stack(out / "phases.mrcs")
    assert torch.equal(phases[2], torch.zeros_like(phases[2]))
    assert phases[[0, 1, 3]].abs().amax(dim=(-2, -1)).min() > 0
    notes = json.loads((out / "retrieve.json").read_text())["notes"]
    assert any("particle 3" in n for n in notes)
