"""torchrun support: which process writes the store, the process group, and sharing the run id with other ranks."""

from __future__ import annotations

import os
from typing import Any


def world_size() -> int:
    """Processes training together (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Rank 0 alone writes the store and prints; the others only train."""
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed() -> None:
    """Join the torchrun process group (NCCL on GPUs, gloo on CPUs) before any rank reads the store."""
    if world_size() > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def broadcast(value: Any) -> Any:
    """Rank 0's value on every rank (the run id it created), unchanged without torchrun."""
    if world_size() > 1:
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


def barrier() -> None:
    """Wait for every rank (rank 0 saves the model while the others wait)."""
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
