"""Training checkpoints: one folder of safetensors + JSON, written atomically, never pickled.

``checkpoint/``: ``model.safetensors``, ``ema.safetensors``, ``optimizer.safetensors`` (Adam moments, keyed
``state.<param>.<name>``), ``rng.safetensors`` (generator states) and ``state.json`` (kind, step, model config,
optimiser hyper-parameters, EMA update count, data-generator names).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from cryophase.io.atomic import temporary_sibling_folder
from cryophase.models.weights import WeightsError, config_to_dict, load_tensors, save_tensors


@dataclass
class TrainingState:
    """What a checkpoint restores besides tensors."""

    kind: str
    step: int
    model_config: dict
    ema_updates: int
    #: The last training losses (the loss explosion check and the logged train_loss continue across a resume).
    recent_losses: tuple[float, ...] = ()


def _optimizer_split(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, state: TrainingState, model: torch.nn.Module, ema_model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, generators: dict[str, torch.Generator]) -> None:
    """Write the checkpoint to a temporary sibling folder, then swap it in (the old one survives a crash)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling_folder(folder)
    try:
        save_tensors(tmp / "model.safetensors", model.state_dict())
        save_tensors(tmp / "ema.safetensors", ema_model.state_dict())
        opt_tensors, opt_meta = _optimizer_split(optimizer)
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        save_tensors(tmp / "rng.safetensors", {k: g.get_state() for k, g in generators.items()})
        meta = {"kind": state.kind, "step": state.step, "model_config": config_to_dict(state.model_config),
                "ema_updates": state.ema_updates, "recent_losses": list(state.recent_losses), "optimizer": opt_meta}
        (tmp / "state.json").write_text(json.dumps(meta, indent=2) + "\n")
        old = folder.with_name(folder.name + ".old")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(folder: Path, kind: str, model: torch.nn.Module, ema_model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, generators: dict[str, torch.Generator]) -> TrainingState:
    """Restore everything :func:`save_checkpoint` wrote, strictly; returns the step and EMA count."""
    folder = Path(folder)
    old = folder.with_name(folder.name + ".old")
    if not (folder / "state.json").is_file() and (old / "state.json").is_file():
        folder = old  # killed between swapping the old checkpoint out and the new one in: the old one is whole
    if not (folder / "state.json").is_file():
        raise WeightsError(f"{folder}: no checkpoint to resume from (state.json missing)")
    meta = json.loads((folder / "state.json").read_text())
    if meta["kind"] != kind:
        raise WeightsError(f"{folder}: checkpoint of a {meta['kind']!r} run, cannot resume {kind!r}")
    current = config_to_dict(model.config)
    if json.loads(json.dumps(current)) != meta["model_config"]:
        raise WeightsError(f"{folder}: checkpoint model config {meta['model_config']} differs from this run's "
                           f"{current}; use the same preset and settings to resume")
    for name, target in (("model", model), ("ema", ema_model)):
        try:
            target.load_state_dict(load_tensors(folder / f"{name}.safetensors"), strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{folder / (name + '.safetensors')}: does not fit the model ({exc})") from None
    optimizer.load_state_dict(_optimizer_join(load_tensors(folder / "optimizer.safetensors"), meta["optimizer"]))
    rng = load_tensors(folder / "rng.safetensors")
    for key, generator in generators.items():
        generator.set_state(rng[key])
    return TrainingState(kind=meta["kind"], step=meta["step"], model_config=meta["model_config"],
                         ema_updates=meta["ema_updates"], recent_losses=tuple(meta.get("recent_losses", ())))
