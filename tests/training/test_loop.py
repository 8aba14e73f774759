"""The training loop: checkpoints, exact resume, exported weights, metrics, and the stop on a diverging loss."""

import csv

import pytest
import torch

from cryophase.models.bundle import load_denoiser, load_regressor, load_vae
from cryophase.models.weights import load_tensors
from cryophase.retrieval.base import get_method
from cryophase.training.ddp import DistributedContext
from cryophase.training.loop import LoopConfig, TrainingDiverged, train
from cryophase.training.runs import build_task, run
from models.tiny import tiny_data, tiny_preset

CPU = DistributedContext(0, 1, torch.device("cpu"))


def test_vae_then_ldm_then_regression_end_to_end(tmp_path):
    preset, data = tiny_preset(max_steps=2), tiny_data(16)
    for kind in ("vae", "ldm", "regression"):
        result = run(kind, preset, data, tmp_path, preset.vae_loop, CPU, progress=False)
        assert result.step == 2
        rows = list(csv.DictReader(open(tmp_path / kind / "metrics.csv")))
        assert [int(r["step"]) for r in rows][-1] == 2
        assert all(torch.isfinite(torch.tensor(float(r["train_loss"]))) for r in rows)
    vae, _ = load_vae(tmp_path / "weights")
    assert vae.config.latent_scale > 0 and vae.config.latent_scale != 1.0
    assert load_denoiser(tmp_path / "weights")[2] == "wiener"
    assert load_regressor(tmp_path / "weights")[1] == "wiener"
    counts = data.counts[:2]
    out = get_method("ldm", weights=tmp_path / "weights", n_steps=2).reconstruct(
        counts, data.physics[:2], generator=torch.Generator().manual_seed(0))
    assert out.phase.shape == (2, 16, 16) and torch.isfinite(out.phase).all()


def test_resume_is_exact(tmp_path):
    preset, data = tiny_preset(), tiny_data(16)
    straight = LoopConfig(**{**preset.vae_loop.__dict__, "max_steps": 4})
    run("vae", preset, data, tmp_path / "a", straight, CPU, progress=False)
    half = LoopConfig(**{**preset.vae_loop.__dict__, "max_steps": 2})
    run("vae", preset, data, tmp_path / "b", half, CPU, progress=False)
    result = run("vae", preset, data, tmp_path / "b", straight, CPU, resume=True, progress=False)
    assert result.step == 4
    a = load_tensors(tmp_path / "a" / "vae" / "checkpoint" / "model.safetensors")
    b = load_tensors(tmp_path / "b" / "vae" / "checkpoint" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_diverging_loss_stops_and_keeps_last_checkpoint(tmp_path):
    preset, data = tiny_preset(), tiny_data(16)
    task = build_task("vae", preset, data, tmp_path / "weights", seed=0)
    original_loss = task.loss
    calls = {"n": 0}

    def loss(net, prepared, generator):
        calls["n"] += 1
        value = original_loss(net, prepared, generator)
        return value * float("nan") if calls["n"] == 3 else value

    task.loss = loss
    config = LoopConfig(**{**preset.vae_loop.__dict__, "max_steps": 10})
    with pytest.raises(TrainingDiverged, match="step 3"):
        train(task, data, config, tmp_path / "vae", tmp_path / "weights", CPU, progress=False)
    import json

    state = json.loads((tmp_path / "vae" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2
    model = load_tensors(tmp_path / "vae" / "checkpoint" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in model.values())


def test_ldm_needs_trained_vae(tmp_path):
    from cryophase.errors import CryophaseError

    with pytest.raises(CryophaseError, match="train vae"):
        build_task("ldm", tiny_preset(), tiny_data(8), tmp_path, seed=0)


def test_data_grid_must_match_preset(tmp_path):
    from cryophase.errors import CryophaseError

    with pytest.raises(CryophaseError, match="16 px"):
        build_task("vae", tiny_preset(), tiny_data(8, size=32), tmp_path, seed=0)


def test_cached_codes_prepare_the_same_batch_as_encoding_on_the_fly(tmp_path):
    from cryophase.training.data import precompute_condition

    from cryophase.models.conditioning import ConditioningConfig
    from cryophase.models.unet import UNetConfig

    preset, data = tiny_preset(max_steps=1), tiny_data(12)
    run("vae", preset, data, tmp_path, preset.vae_loop, CPU, progress=False)
    preset.conditioning = ConditioningConfig(pixel_inputs=True)  # cached codes beside per-batch pixel channels
    preset.denoiser = UNetConfig(in_channels=36, out_channels=2, base_channels=8, channel_multipliers=(1, 2),
                                 embedding_dim=16)
    task = build_task("ldm", preset, data, tmp_path / "weights", seed=0)
    conditioned = precompute_condition(data, task.conditioner, seed=5, progress=False)
    cached = task.cache_codes(conditioned, chunk_size=5, progress=False)  # chunks that do not divide 12
    assert cached.extras["z0"].shape == (12, 2, 4, 4) and cached.extras["condition_code"].shape == (12, 2, 4, 4)
    # the condition is the cached code followed by the pixel channels: 2 + 2 x 16
    with_cache = task.prepare(cached.sample(6, torch.Generator().manual_seed(3)), torch.Generator())
    on_the_fly = task.prepare(conditioned.sample(6, torch.Generator().manual_seed(3)), torch.Generator())
    assert with_cache["condition"].shape == (6, 34, 4, 4)
    for key in ("z0", "condition"):
        torch.testing.assert_close(with_cache[key], on_the_fly[key], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="conditions computed first"):
        task.cache_codes(data, progress=False)


def test_metrics_log_widens_the_table_when_new_metrics_appear(tmp_path):
    import csv

    from cryophase.training.loop import MetricsLog

    log = MetricsLog(tmp_path, enabled=True)
    log.write(1, {"loss": 0.5})
    log.write(2, {"loss": 0.4, "ncc": 0.9})  # a resumed run that logs one more metric
    log.write(3, {"loss": 0.3, "ncc": 0.95})
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert [r["ncc"] for r in rows] == ["", "0.9", "0.95"] and rows[2]["loss"] == "0.3"


def test_extras_survive_new_conditions_of_the_same_method_only():
    data = tiny_data(4)
    coded = data.with_condition(data.phase, "wiener").with_extras(z0=torch.arange(4.0))
    assert torch.equal(coded.with_condition(data.phase + 1, "wiener").extras["z0"], torch.arange(4.0))
    assert coded.with_condition(data.phase, "ml").extras == {}  # codes of wiener conditions would be stale
    with pytest.raises(ValueError, match="extra 'z0' has 3 rows"):
        data.with_extras(z0=torch.zeros(3))
