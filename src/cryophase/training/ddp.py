"""Multi-process training with DistributedDataParallel, started by ``torchrun`` (gloo on CPU, nccl on CUDA).

Without ``WORLD_SIZE > 1`` in the environment everything runs in one process and these helpers are no-ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class DistributedContext:
    """This process's place: ``rank`` of ``world_size``, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group described by torchrun's environment variables, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext(0, 1, device)
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistributedContext(rank, world, device)


def wrap(model: nn.Module, ctx: DistributedContext) -> nn.Module:
    """The module to call in the training step: DDP-wrapped when distributed (gradients are averaged)."""
    if not ctx.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def any_rank(flag: bool, ctx: DistributedContext) -> bool:
    """True on every rank if ``flag`` is true on any rank (so all ranks stop together)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(ctx: DistributedContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistributedContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
