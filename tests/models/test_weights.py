"""Strict weight loading: exact round trip; mismatched config, tampered tensors and pickles are refused."""

import json

import pytest
import torch

from cryophase.models.bundle import ModelGrid, load_vae, save_vae
from cryophase.models.vae import PhaseVAE
from cryophase.models.weights import WeightsError, save_tensors
from models.tiny import tiny_vae_config

GRID = ModelGrid(16, 3.5)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    vae = PhaseVAE(tiny_vae_config())
    vae.config.latent_scale = 1.7
    save_vae(tmp_path, vae, GRID)
    return tmp_path, vae


def test_round_trip_is_exact(saved):
    folder, vae = saved
    loaded, grid = load_vae(folder)
    assert grid == GRID
    assert loaded.config == vae.config
    for (k, a), (_, b) in zip(vae.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_refuses_mismatched_config(saved):
    folder, _ = saved
    meta = json.loads((folder / "vae.json").read_text())
    meta["config"]["base_channels"] = 16
    (folder / "vae.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="tensors do not match"):
        load_vae(folder)


def test_refuses_unknown_config_field(saved):
    folder, _ = saved
    meta = json.loads((folder / "vae.json").read_text())
    meta["config"]["attention"] = True
    (folder / "vae.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="does not know"):
        load_vae(folder)


def test_refuses_tampered_tensors(saved):
    folder, vae = saved
    state = {k: v.clone() for k, v in vae.state_dict().items()}
    first = next(iter(state))
    state[first] += 1e-3
    save_tensors(folder / "vae.safetensors", state)
    with pytest.raises(WeightsError, match="checksum"):
        load_vae(folder)


def test_refuses_pickle(saved, tmp_path):
    folder, vae = saved
    pickle_file = tmp_path / "model.pt"
    torch.save(vae.state_dict(), pickle_file)
    with pytest.raises(WeightsError, match="pickle"):
        load_vae(pickle_file)
    # A pickle renamed to .safetensors fails the checksum and is never unpickled.
    (folder / "vae.safetensors").write_bytes(pickle_file.read_bytes())
    with pytest.raises(WeightsError, match="checksum"):
        load_vae(folder)


def test_refuses_folder_with_only_pickles(tmp_path):
    torch.save({}, tmp_path / "vae.pth")
    with pytest.raises(WeightsError, match="never loaded"):
        load_vae(tmp_path)
