"""DistributedDataParallel smoke test: two CPU processes with gloo train a few steps and stay in sync."""

import os
import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

from cryophase.models.weights import load_tensors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from cryophase.models.weights import save_tensors
    from cryophase.training.ddp import init_distributed, shutdown
    from cryophase.training.loop import train
    from cryophase.training.runs import build_task
    from models.tiny import tiny_data, tiny_preset

    ctx = init_distributed(torch.device("cpu"))
    preset = tiny_preset(max_steps=3)
    out = Path(out)
    task = build_task("vae", preset, tiny_data(16), out / "weights", seed=0)
    save_tensors(out / f"init{rank}.safetensors", task.model.state_dict())
    train(task, tiny_data(16), preset.vae_loop, out / "vae", out / "weights", ctx, progress=False)
    save_tensors(out / f"rank{rank}.safetensors", task.model.state_dict())
    shutdown(ctx)


def test_two_gloo_processes_train_in_sync(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert '"step": 3' in (tmp_path / "vae" / "checkpoint" / "state.json").read_text()
    assert (tmp_path / "weights" / "vae.safetensors").is_file()
    init = load_tensors(tmp_path / "init0.safetensors")
    r0, r1 = load_tensors(tmp_path / "rank0.safetensors"), load_tensors(tmp_path / "rank1.safetensors")
    # DDP broadcasts rank 0's initial weights and averages gradients, so both ranks end identical...
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], msg=k)
    # ...and they moved away from the initial weights.
    assert any(not torch.equal(init[k], r0[k]) for k in init if init[k].dtype.is_floating_point)
