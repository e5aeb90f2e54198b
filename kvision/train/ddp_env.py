"""Where this process stands in a data-parallel run, and how to start one; no Keras import.

Kept apart from :mod:`kvision.train.distributed` because :func:`init_from_env` must run
before Keras loads (Keras reads ``KERAS_TORCH_DEVICE`` once, at import).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import torch
import torch.distributed as dist


def init_from_env() -> bool:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1); True if joined.

    Call before Keras creates any tensor: on CUDA it pins this rank to GPU ``LOCAL_RANK``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return True
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        os.environ.setdefault("KERAS_TORCH_DEVICE", f"cuda:{local}")  # read when Keras loads
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


def is_distributed() -> bool:
    """Whether this process is one of several data-parallel ranks."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of ranks (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes the run directory (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint the others read)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory rank 0 created)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def launch(nprocs: int, argv: list[str]) -> int:
    """``kvision run --gpus N``: run ``kvision <argv>`` as N ranks under torchrun; exit code."""
    from kvision.errors import KvisionError

    if nprocs < 1:
        raise KvisionError(f"--gpus must be at least 1, got {nprocs}.")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nprocs}", "-m", "kvision", *argv]
    return subprocess.call(cmd)
