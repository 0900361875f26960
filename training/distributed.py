"""Data-parallel training with torch.distributed: one process per device, launched by torchrun.

The switch is the launcher. Under `torchrun` (WORLD_SIZE > 1 in the environment) every
trainer joins the process group when it is built (`init_from_env`) and trains with
DistributedDataParallel; under plain `python` nothing here does anything and training is
the single-process run, unchanged.

    torchrun --standalone --nproc_per_node=8 $(which guwm) curriculum run --device cuda ...

Backends: NCCL when the trainer's device is CUDA (a bare "cuda" means the local rank's
GPU), gloo on the CPU. Rank 0 writes every file (checkpoints, metrics, results, plots);
`barrier` lets the other ranks read them once written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from training.devices import check_device

__all__ = [
    "World",
    "all_reduce_mean",
    "all_reduce_sum",
    "barrier",
    "cleanup",
    "init_from_env",
    "is_main",
    "local_device",
    "world",
    "wrap",
]


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one rank trains."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files."""
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This rank's contiguous share of `n` global batch rows: r*n/W .. (r+1)*n/W."""
        if n < self.size:
            raise ValueError(f"a global batch of {n} rows cannot be split over {self.size} ranks")
        return slice(self.rank * n // self.size, (self.rank + 1) * n // self.size)


def world() -> World:
    """The current process group's world; a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def init_from_env(device: str | torch.device = "cpu") -> World:
    """Join torchrun's process group when WORLD_SIZE > 1 (once per process); the world.

    Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT as torchrun sets them.
    NCCL for a CUDA `device` (and the local rank's GPU made current), else gloo.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        cuda = check_device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if cuda else "gloo")
    return world()


def local_device(device: str | torch.device, ranks: World) -> torch.device:
    """`device` for this rank: a bare "cuda" is the local rank's GPU when distributed.
    A device this machine lacks raises `DeviceUnavailableError`."""
    device = check_device(device)
    if ranks.active and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ranks.local_rank)
    return device


def is_main() -> bool:
    """True on rank 0 and in a single process."""
    return world().is_main


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if world().active:
        dist.barrier()


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The element-wise sum of `tensor` over the ranks, as a new tensor."""
    total = tensor.detach().clone()
    if world().active:
        dist.all_reduce(total)
    return total


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The element-wise mean of `tensor` over the ranks, as a new tensor."""
    return all_reduce_sum(tensor) / world().size


def cleanup() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device) -> DistributedDataParallel:
    """`module` under DDP, synchronising its trainable parameters only.

    Frozen parameters (the CogVideoX transformer) and buffers are ignored: never
    broadcast, at wrapping or in forward, nor reduced (every rank builds or loads the same
    ones). At wrapping rank 0's trainable values are broadcast; in `backward` their
    gradients are averaged over the ranks.
    """
    ignored = [name for name, p in module.named_parameters() if not p.requires_grad]
    ignored += [name for name, _ in module.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, ignored)
    return DistributedDataParallel(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        forward_sync_buffers=False,
    )
