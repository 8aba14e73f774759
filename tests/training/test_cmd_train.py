"""``cryophase train vae`` then ``ldm`` on a tiny `cryophase simulate`-style folder, through the CLI."""

import json

import pytest
import torch
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.simulation import SimulationConfig
from cryophase.simulation.dataset import simulate_dataset
from cryophase.training.presets import get_preset
from cryophase.specimens.synthetic import SyntheticProteinConfig, random_synthetic_protein


@pytest.mark.slow
def test_train_vae_then_ldm_from_folder(tmp_path):
    specimen = random_synthetic_protein(SyntheticProteinConfig(), torch.Generator().manual_seed(0))
    simulate_dataset(tmp_path / "sim", 8, [specimen], SimulationConfig(), 0, progress=False)
    runner = CliRunner()
    common = ["--out", str(tmp_path / "run"), "--data", str(tmp_path / "sim"), "--max-steps", "1",
              "--batch-size", "2", "--no-progress", "--device", "cpu"]
    for kind in ("vae", "ldm"):
        result = runner.invoke(app, ["train", kind, *common])
        assert result.exit_code == 0, result.output
        assert f"{kind}: 1 steps" in result.output
    weights = tmp_path / "run" / "weights"
    # the denoiser records the conditioning method it was trained with, the preset's
    assert (json.loads((weights / "denoiser.json").read_text())["extra"]["condition_method"]
            == get_preset("default").condition_method)
    # and the conditioning was cached in the data folder, keyed by method, options, seed and count
    assert (tmp_path / "sim" / f"condition_{get_preset('default').condition_method}.mrcs").is_file()
    # A second run into the same folder is refused without --overwrite or --resume.
    again = runner.invoke(app, ["train", "vae", *common])
    assert again.exit_code == 2 and "--overwrite" in again.output
    resumed = runner.invoke(app, ["train", "vae", *common[:-5], "--max-steps", "2", "--batch-size", "2",
                                  "--no-progress", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "vae: 2 steps" in resumed.output
