"""Optional DDP, detected from the launcher's environment (``torchrun`` sets RANK / WORLD_SIZE).

The same code runs single-process on a CPU when those variables are absent. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ssl_bench.errors import RecipeError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """A device name (None / auto → cuda when torch sees one, else cpu); whether it is here is not checked
    (``check_device`` does that), so a record can name the device a run used elsewhere."""
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise RecipeError(f"--device {device}: not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def check_device(dev: torch.device, asked: str | None) -> None:
    """RecipeError naming ``--device`` when ``dev`` is not on this machine (before anything is written)."""
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RecipeError(
                f"--device {asked}: torch sees no CUDA device on this machine (no GPU, no driver, or a "
                "CPU-only torch build); use --device cpu, or leave --device out"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RecipeError(
                f"--device {asked}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise RecipeError(f"--device {asked}: torch sees no MPS device on this machine; use --device cpu")
    elif dev.type not in ("cpu", "mps"):
        raise RecipeError(f"--device {asked}: not supported for pretraining; use cpu, cuda or cuda:N")


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group if launched by torchrun; otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    check_device(dev, device)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_state(module: nn.Module) -> None:
    """Every tensor of ``module``'s state (parameters and buffers) set to rank 0's, in place, as
    ``DistributedDataParallel`` does when it wraps a module."""
    for value in module.state_dict().values():
        if torch.is_tensor(value):
            dist.broadcast(value, src=0)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the processes, in place: one all-reduce of one flat buffer.

    Every process must pass the same parameters, each with a gradient (``training/optimizers.py``).
    """
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # [total elements]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
