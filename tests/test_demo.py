"""The main job end to end: `cryophase demo --n 2` with the shipped weights, and `ldm` on a tiny stack."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.io.mrc import read_stack, write_stack
from cryophase.io.star import optics_table, write_star
from cryophase.models.bundle import default_weights_folder
from cryophase.physics import ImagingPhysics, Optics, expected_counts, sample_counts

pytestmark = pytest.mark.skipif(not (default_weights_folder() / "denoiser.json").is_file(),
                                reason="no shipped weights in this installation")


def test_demo_writes_figure_report_and_finite_metrics(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--n", "2", "--samples", "2", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for name in ("figure.png", "frc.png", "report.html", "metrics.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html  # self-contained: images inlined
    metrics = json.loads((out / "metrics.json").read_text())
    methods = [row["method"] for row in metrics["metrics"]]
    assert any(m.startswith("ldm") for m in methods) and "wiener" in methods
    for row in metrics["metrics"]:
        for key, value in row.items():
            if key != "method":
                assert math.isfinite(value), (row["method"], key, value)
    assert metrics["provenance"]["cryophase_version"]
    # a second run into the same folder is refused without --overwrite, and nothing is lost
    before = (out / "metrics.json").read_bytes()
    again = CliRunner().invoke(app, ["demo", "--n", "2", "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (out / "metrics.json").read_bytes() == before


def test_retrieve_ldm_with_shipped_weights_on_a_small_stack(tmp_path, generator):
    # 3 particles of 48 px at 2.8 A/px: not the model's grid, so they are rescaled to it and back.
    n, box, pixel = 3, 48, 2.8
    yy, xx = torch.meshgrid(torch.arange(box) - box / 2, torch.arange(box) - box / 2, indexing="ij")
    phase = 0.3 * torch.exp(-(yy**2 + xx**2) / (2 * 6.0**2)).expand(n, box, box).clone()
    optics = Optics.create(defocus_u_angstrom=[12000.0, 15000.0, 20000.0], pixel_size_angstrom=pixel,
                           batch_size=n)
    counts = sample_counts(expected_counts(phase, optics, torch.tensor(40.0)), generator)
    write_stack(tmp_path / "p.mrcs", counts, pixel)
    particles = pd.DataFrame({"rlnImageName": [f"{i + 1}@p.mrcs" for i in range(n)],
                              "rlnDefocusU": optics.defocus_u_angstrom.tolist(),
                              "rlnDefocusV": optics.defocus_v_angstrom.tolist(),
                              "rlnDefocusAngle": [0.0] * n, "rlnOpticsGroup": [1] * n})
    write_star(tmp_path / "p.star", {"optics": optics_table(optics, box), "particles": particles})
    result = CliRunner().invoke(app, ["retrieve", str(tmp_path / "p.star"), "--method", "ldm", "--samples", "2",
                                      "--steps", "5", "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    phases, header_pixel = read_stack(tmp_path / "out" / "phases.mrcs")
    sd, _ = read_stack(tmp_path / "out" / "uncertainty.mrcs")
    assert phases.shape == (n, box, box) and sd.shape == (n, box, box)
    assert header_pixel == pytest.approx(pixel)
    assert torch.isfinite(phases).all() and bool((sd >= 0).all())
    assert np.isfinite(phases.numpy()).all()
    assert "ONE posterior sample" not in result.output  # K = 2: the mean, no one-sample note
    single = CliRunner().invoke(app, ["retrieve", str(tmp_path / "p.star"), "--method", "ldm", "--steps", "2",
                                      "--out", str(tmp_path / "one"), "--device", "cpu"])
    assert single.exit_code == 0, single.output
    assert not (tmp_path / "one" / "uncertainty.mrcs").exists()
    notes = json.loads((tmp_path / "one" / "retrieve.json").read_text())["notes"]
    assert any("ONE posterior sample" in note and "--samples" in note for note in notes)
