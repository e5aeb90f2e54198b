"""Where this process stands in a data-parallel run, and how to start one; no Keras import.

Kept apart from :mod:`kvision.train.distributed` because :func:`init_from_env` must run
before Keras loads (Keras reads ``KERAS_TORCH_DEVICE`` once, at import).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
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
    """``kvision run --gpus N ...``: become ``torchrun`` running ``kvision <argv>`` as N ranks.

    ``argv`` is the command line after ``kvision`` (``--gpus`` is dropped from it, so the
    ranks run the plain command). The process is replaced (``exec``), so Ctrl-C and SIGTERM
    reach torchrun, which passes them to every rank; returns only in tests that stub exec.
    """
    from kvision.errors import KvisionError

    if nprocs < 1:
        raise KvisionError(f"--gpus must be at least 1, got {nprocs}.")
    if torch.cuda.is_available() and nprocs > torch.cuda.device_count():
        raise KvisionError(f"--gpus {nprocs} asks for more GPUs than this machine has "
                           f"({torch.cuda.device_count()}).")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nprocs}", "-m", "kvision", *_without_gpus(argv)]
    os.execv(sys.executable, cmd)
    return 0  # not reached: exec replaced this process


def _without_gpus(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--gpus":
            skip = True
        elif not arg.startswith("--gpus="):
            out.append(arg)
    return out


class FollowerWriter:
    """What ranks > 0 use instead of a RunWriter: the same ``dir`` (to read checkpoints
    from), but every write is dropped, so only rank 0 writes the run directory."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)

    def event(self, event: str, **fields: Any) -> dict:
        """Dropped (rank 0 records the event)."""
        return {"event": event, **fields}

    def artifact(self, path: str | os.PathLike, kind: str, **fields: Any) -> dict:
        """Dropped (rank 0 records the file)."""
        return {"event": "artifact", "path": str(path), "kind": kind, **fields}

    def warning(self, kind: str, message: str, **fields: Any) -> dict:
        """Dropped (rank 0 records the warning)."""
        return {"event": "warning", "kind": kind, "message": message, **fields}

    def write_json(self, relpath: str, obj: Any) -> Path:
        """Dropped; returns where rank 0 writes it."""
        return self.dir / relpath

    def write_text(self, relpath: str, text: str) -> Path:
        """Dropped; returns where rank 0 writes it."""
        return self.dir / relpath

    def close(self) -> None:
        """Nothing to close."""
