"""The training loop shared by the VAE, the denoiser and the regression peer.

AdamW with gradient clipping, EMA weights, a fixed validation batch, metrics in ``metrics.csv`` (and TensorBoard
when the ``tensorboard`` package is importable), an atomic checkpoint every ``checkpoint_every`` steps, ``resume``
and a stop with a message (keeping the last good checkpoint) on a non-finite or exploding loss. Under ``torchrun``
each rank draws its own batches and DDP averages the gradients; only rank 0 writes.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from cryophase.io.outputs import atomic_path
from cryophase.training.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from cryophase.training.data import TrainingData
from cryophase.training.ddp import DistributedContext, any_rank, barrier, wrap
from cryophase.training.ema import EMA


@dataclass
class LoopConfig:
    """Optimisation settings of one training run.

    Attributes
    ----------
    batch_size : particles per step and rank.
    learning_rate : AdamW learning rate (constant after a linear warm-up).
    warmup_steps : linear learning-rate warm-up.
    weight_decay : AdamW weight decay.
    max_steps : stop after this many steps.
    max_minutes : stop after this much wall time (None: no limit).
    ema_decay : EMA decay of the exported weights.
    grad_clip : gradient-norm clip.
    validate_every : steps between validations.
    checkpoint_every : steps between checkpoints (and weight exports).
    n_validation : particles in the fixed validation batch.
    explosion_factor : stop when the loss exceeds this times the running mean of the last 100 losses.
    seed : seeds the data, noise and validation generators.
    """

    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    max_steps: int = 100_000
    max_minutes: float | None = None
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    validate_every: int = 100
    checkpoint_every: int = 200
    n_validation: int = 32
    explosion_factor: float = 50.0
    seed: int = 0


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or exploded; the last good checkpoint is kept."""


@dataclass
class RunResult:
    step: int
    stopped_by: str
    last_metrics: dict[str, float]


class MetricsLog:
    """Append rows to ``metrics.csv`` (and TensorBoard scalars when available)."""

    def __init__(self, folder: Path, enabled: bool):
        self.path = folder / "metrics.csv"
        self.enabled = enabled
        self.writer = None
        if enabled:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(folder / "tensorboard"))
            except ImportError:
                self.writer = None

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **metrics}
        text = self.path.read_text() if self.path.exists() else ""
        header = text.split("\n", 1)[0].split(",") if text else []
        buffer = io.StringIO()
        if header and header != list(row):  # new metrics (a resumed run of another version): widen every row
            old_rows = list(csv.DictReader(io.StringIO(text)))
            fields = header + [k for k in row if k not in header]
            w = csv.DictWriter(buffer, fieldnames=fields, restval="", lineterminator="\n")
            w.writeheader()
            w.writerows(old_rows)
            text = ""
        else:
            w = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
            if not text:
                w.writeheader()
        w.writerow(row)
        with atomic_path(self.path) as tmp:  # a killed run never leaves a torn row
            tmp.write_text(text + buffer.getvalue())
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, step)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (by a run killed after its last checkpoint), before resuming."""
        if not self.enabled or not self.path.exists():
            return
        with open(self.path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or all(int(r["step"]) <= step for r in rows):
            return
        buffer = io.StringIO()
        w = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(r for r in rows if int(r["step"]) <= step)
        with atomic_path(self.path) as tmp:
            tmp.write_text(buffer.getvalue())

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _learning_rate(step: int, config: LoopConfig) -> float:
    return config.learning_rate * min(1.0, (step + 1) / max(1, config.warmup_steps))


def train(task, data: TrainingData, config: LoopConfig, run_folder: Path, weights_folder: Path,
          ctx: DistributedContext, *, resume: bool = False, progress: bool = True) -> RunResult:
    """Train ``task.model`` on batches from ``data``; checkpoints in ``run_folder/checkpoint``.

    Returns the final step, why it stopped ("max_steps", "max_minutes") and the last validation metrics. Raises
    :class:`TrainingDiverged` on a non-finite or exploding loss (the last checkpoint stays as it was).
    """
    device = ctx.device
    model = task.model.to(device)
    net = wrap(model, ctx)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    ema = EMA(model, config.ema_decay)
    data_gen = torch.Generator(device).manual_seed(config.seed * 7919 + 1000 * ctx.rank + 1)
    noise_gen = torch.Generator(device).manual_seed(config.seed * 7919 + 1000 * ctx.rank + 2)
    generators = {"data": data_gen, "noise": noise_gen}
    checkpoint_folder = Path(run_folder) / "checkpoint"

    step = 0
    recent: list[float] = []
    if resume:
        state = load_checkpoint(checkpoint_folder, task.kind, model, ema.model, optimizer, generators)
        step, ema.updates, recent = state.step, state.ema_updates, list(state.recent_losses)
        if ctx.distributed:  # rank 0's generator states were saved; give each rank its own streams again
            data_gen.manual_seed(config.seed * 7919 + 1000 * ctx.rank + 1 + 10_000_019 * step)
            noise_gen.manual_seed(config.seed * 7919 + 1000 * ctx.rank + 2 + 10_000_019 * step)

    val_gen = torch.Generator(device).manual_seed(config.seed * 7919 + 3)
    validation = task.prepare(data.sample(config.n_validation, val_gen).to(device), val_gen)
    log = MetricsLog(Path(run_folder), ctx.is_main)
    log.truncate_after(step)

    start = time.monotonic()
    metrics: dict[str, float] = {}
    validated_at = checkpointed_at = -1

    def checkpoint():
        nonlocal checkpointed_at
        if ctx.is_main:
            save_checkpoint(checkpoint_folder, TrainingState(task.kind, step, model.config, ema.updates,
                                                             tuple(recent)), model, ema.model, optimizer, generators)
            task.export(ema.model, weights_folder, validation)
        barrier(ctx)
        checkpointed_at = step

    def validate():
        nonlocal metrics, validated_at
        if ctx.is_main:
            metrics = {"train_loss": sum(recent) / max(1, len(recent)),
                       **task.validate(ema.model.eval(), validation,
                                       torch.Generator(device).manual_seed(config.seed + 11)),
                       "elapsed_s": time.monotonic() - start}
            log.write(step, metrics)
        validated_at = step
    stopped_by = "max_steps"
    bar = tqdm(total=config.max_steps, initial=step, disable=not (progress and ctx.is_main), desc=task.kind,
               dynamic_ncols=True)
    try:
        while step < config.max_steps:
            out_of_time = config.max_minutes is not None and time.monotonic() - start > 60 * config.max_minutes
            if any_rank(out_of_time, ctx):
                stopped_by = "max_minutes"
                break
            model.train()
            batch = data.sample(config.batch_size, data_gen).to(device)
            prepared = task.prepare(batch, noise_gen)
            loss = task.loss(net, prepared, noise_gen)
            value = float(loss.detach())
            mean_recent = sum(recent) / len(recent) if len(recent) >= 10 else math.inf
            bad = not math.isfinite(value) or value > config.explosion_factor * mean_recent
            if any_rank(bad, ctx):
                raise TrainingDiverged(
                    f"{task.kind}: loss {value:.4g} at step {step + 1} (recent mean {mean_recent:.4g}); stopped, "
                    f"the last good checkpoint in {checkpoint_folder} is kept (lower the learning rate and "
                    "--resume)")
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(model)
            step += 1
            recent = (recent + [value])[-100:]
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
            if step % config.validate_every == 0:
                validate()
            if step % config.checkpoint_every == 0:
                checkpoint()
        if validated_at != step:
            validate()
        if checkpointed_at != step:
            checkpoint()
    finally:
        bar.close()
        log.close()
    return RunResult(step=step, stopped_by=stopped_by, last_metrics=metrics)
