"""Devices and processes: CUDA when present, else the CPU; DistributedDataParallel under torchrun.

Under ``torchrun --nproc_per_node K`` every process trains on its share of
each batch and gradients are averaged (NCCL on GPUs, gloo on CPUs, which is
how the tests exercise this path on a machine without a GPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime() -> Runtime:
    """CUDA when present, else CPU; a process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=process_group_timeout())
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return Runtime(device, rank, world)


def process_group_timeout() -> timedelta:
    """How long a collective may wait for the slowest process: ``$WEAKSEP_DIST_TIMEOUT_S`` seconds,
    default 3600. The other ranks wait at the stop decision while rank 0 validates, so this must
    exceed one validation (minutes at the paper profile); a hang then ends with an error, not never."""
    return timedelta(seconds=float(os.environ.get("WEAKSEP_DIST_TIMEOUT_S", "3600")))


def decision_of_main(flag: bool, rt: Runtime) -> bool:
    """Rank 0's ``flag`` on every process (a broadcast; ``flag`` itself on one process).

    Every rank must call it at the same step: a decision made on rank 0 alone (stop early) would
    otherwise send it out of the loop while the others wait in the next gradient all-reduce.
    """
    if rt.world_size == 1:
        return flag
    t = torch.tensor([int(flag)], device=rt.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def wrap_model(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    """``model`` itself on one process, in DistributedDataParallel on several."""
    if rt.world_size == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
    )


def check_replicas_agree(model: torch.nn.Module) -> None:
    """Under DDP every process must end with the same weights (gradients were synchronised)."""
    local = torch.stack([p.detach().double().sum() for p in model.parameters()])
    high, low = local.clone(), local.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    if not torch.allclose(high, low, rtol=1e-6, atol=1e-8):
        raise RuntimeError("DDP replicas ended with different weights: gradients were not synchronised")
