"""Running ``fusionkit train`` under ``torchrun``: which process this is, the process group, and the few collectives
the loop needs.

``torchrun --nproc_per_node N -m fusionkit.cli train SPEC`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous variables; fusionkit then joins a process group (gloo on CPU, NCCL on CUDA), wraps the model in
DistributedDataParallel, gives each process its shard of the training items and ``batch / N`` crops per step, and
lets only rank 0 write files. Without those variables everything runs in one process and nothing here is used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import RunError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_environment() -> World:
    """The process's place in a ``torchrun`` launch (a single process when not launched that way)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise RunError(f"malformed torchrun environment ({exc})", "launch with torchrun, or unset RANK, "
                       "WORLD_SIZE and LOCAL_RANK") from None
    return World(rank, size, local)


def device_for(world: World, name: str) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for CUDA, else the CPU."""
    from ..engine import resolve_device

    device = resolve_device(name)
    if device.type == "cuda":
        if world.distributed and world.local_rank >= torch.cuda.device_count():
            raise RunError(f"process {world.rank} wants GPU {world.local_rank}, but only "
                           f"{torch.cuda.device_count()} are visible", "start at most one process per GPU "
                           "(torchrun --nproc_per_node)")
        device = torch.device("cuda", world.local_rank if world.distributed else 0)
        torch.cuda.set_device(device)
    return device


def start(world: World, device: torch.device) -> World:
    """Join the process group (gloo on CPU, NCCL on CUDA); returns the world with its backend."""
    if not world.distributed:
        return world
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend)
        except Exception as exc:
            raise RunError(f"could not join the torchrun process group ({type(exc).__name__}: {exc})",
                           "launch with `torchrun --nproc_per_node N -m fusionkit.cli train SPEC`; check "
                           "MASTER_ADDR/MASTER_PORT") from exc
    return World(world.rank, world.size, world.local_rank, backend)


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(world: World, values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over every process (the tensor itself when alone)."""
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_floats(world: World, value: float, device: torch.device) -> list[float]:
    """One float from every process, in rank order."""
    if not world.distributed:
        return [value]
    t = torch.tensor([value], dtype=torch.float64, device=device)
    out = [torch.zeros_like(t) for _ in range(world.size)]
    dist.all_gather(out, t)
    return [float(x.item()) for x in out]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
