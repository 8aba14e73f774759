"""``--weights`` never unpickles: pickles, tampered and mismatched safetensors are refused with one line."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from robust_inputs import assert_user_error, invoke, snapshot
from cryophase.models.blocks import initialise
from cryophase.models.bundle import ModelGrid, save_denoiser, save_regressor, save_vae
from cryophase.models.regression import PhaseRegressor
from cryophase.models.unet import UNet
from cryophase.models.vae import PhaseVAE
from models.tiny import PIXEL_A, SIZE, tiny_preset, tiny_regression_config, tiny_unet_config, tiny_vae_config


def save_tiny_weights(folder):
    """Randomly initialised tiny VAE, denoiser and regression peer (16 px at 3.5 A), seeded."""
    g = torch.Generator().manual_seed(0)
    grid = ModelGrid(SIZE, PIXEL_A)
    save_vae(folder, initialise(PhaseVAE(tiny_vae_config()), g), grid)
    save_denoiser(folder, initialise(UNet(tiny_unet_config()), g), tiny_preset().diffusion, "wiener", grid)
    save_regressor(folder, initialise(PhaseRegressor(tiny_regression_config()), g), "wiener", grid)
    return folder


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_tiny_weights(tmp_path_factory.mktemp("weights") / "weights")


@pytest.fixture
def weights(tiny_weights, tmp_path):
    return shutil.copytree(tiny_weights, tmp_path / "weights")


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Any attempt to unpickle fails the test loudly (not with a user error the test could mistake for success)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle / torch.load was called")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)


def pickle_file(weights, tmp_path):
    path = tmp_path / "model.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state": 1}, fh)
    return path, ["model.pt", "pickle checkpoints are never loaded"]


def folder_with_only_a_pickle(weights, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    with open(folder / "regression.pth", "wb") as fh:
        pickle.dump({"state": 1}, fh)
    return folder, ["pickled", "regression.pth", "never loaded"]


def tampered_tensors(weights, tmp_path):
    path = weights / "regression.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    return weights, ["regression.safetensors", "checksum differs"]


def mismatched_tensors(weights, tmp_path):
    """The VAE's tensors under the regression name, with a matching checksum: the tensor names must not fit."""
    shutil.copy(weights / "vae.safetensors", weights / "regression.safetensors")
    meta = json.loads((weights / "regression.json").read_text())
    meta["sha256"] = json.loads((weights / "vae.json").read_text())["sha256"]
    (weights / "regression.json").write_text(json.dumps(meta))
    return weights, ["regression.safetensors", "tensors do not match"]


def wrong_kind(weights, tmp_path):
    shutil.copy(weights / "vae.json", weights / "regression.json")
    return weights, ["regression.json", "holds a 'vae' model"]


def not_safetensors(weights, tmp_path):
    path = weights / "regression.safetensors"
    path.write_bytes(b"garbage" * 10)
    meta = json.loads((weights / "regression.json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (weights / "regression.json").write_text(json.dumps(meta))
    return weights, ["regression.safetensors", "not a valid safetensors file"]


def missing_folder(weights, tmp_path):
    return tmp_path / "nowhere", ["nowhere"]


CASES = {f.__name__: f for f in (pickle_file, folder_with_only_a_pickle, tampered_tensors, mismatched_tensors,
                                 wrong_kind, not_safetensors, missing_folder)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_weights_refused_never_unpickled(case, weights, sim, tmp_path):
    path, phrases = CASES[case](weights, tmp_path)
    out = tmp_path / "out"
    result = invoke(["retrieve", sim / "particles.star", "--method", "regression", "--weights", path,
                     "--out", out, "--device", "cpu"])
    assert_user_error(result, *phrases)
    assert snapshot(out) == {}


@pytest.mark.parametrize("method", ["regression", "ldm"])
def test_good_weights_load_without_unpickling(method, weights, sim, tmp_path):
    options = ["--option", "n_steps=2"] if method == "ldm" else []
    result = invoke(["retrieve", sim / "particles.star", "--method", method, "--weights", weights, *options,
                     "--out", tmp_path / "out", "--device", "cpu"])
    assert result.exit_code == 0, result.output
