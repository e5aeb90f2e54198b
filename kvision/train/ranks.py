"""Where this process stands in a data-parallel run: its rank, the collectives that keep the
ranks in step, and the writer each rank gets; no Keras import.

Kept apart from :mod:`kvision.train.distributed` because :func:`init_from_env` must run
before Keras loads (Keras reads ``KERAS_TORCH_DEVICE`` once, at import). Starting the
ranks (torchrun) is :mod:`kvision.train.launch`.
"""

from __future__ import annotations

import atexit
import functools
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from kvision.train.signals import StopFlag

F = TypeVar("F", bound=Callable[..., Any])


def init_from_env() -> bool:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1); True if joined.

    Call before Keras creates any tensor: on CUDA it pins this rank to GPU ``LOCAL_RANK``.
    """
    dist = _dist()
    if dist is None:
        return False
    if dist.is_initialized():
        return True
    import torch

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        os.environ.setdefault("KERAS_TORCH_DEVICE", f"cuda:{local}")  # read when Keras loads
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    # Left to the interpreter's exit, gloo's threads can abort the process ("terminate called
    # without an active exception"), turning exit code 2 of a user mistake into SIGABRT.
    atexit.register(_leave)
    return True


def _dist() -> Any:
    """``torch.distributed`` when this process is one of several ranks (torchrun's
    ``WORLD_SIZE`` > 1), else None. A lone process never imports it here, so that
    ``kvision run`` claims its run directory before torch loads (1-3 s): a second writer
    started at the same instant is refused at once, not after importing torch too."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch.distributed as dist

    return dist


def _leave() -> None:
    dist = _dist()
    if dist is not None and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """Whether this process is one of several data-parallel ranks."""
    dist = _dist()
    return (
        dist is not None
        and dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() > 1
    )


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of ranks (1 when not distributed)."""
    return _dist().get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes the run directory (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint the others read)."""
    if is_distributed():
        _dist().barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory rank 0 created)."""
    if not is_distributed():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def check_everywhere(ok: bool, problem: str) -> None:
    """Raise KvisionError on every rank if the check failed on any of them.

    A check that fails on one node only (it cannot see the run directory) must stop all
    ranks alike: a rank that went on would wait for the others in a collective forever.
    """
    from kvision.errors import KvisionError

    failed_somewhere = any_rank(not ok)
    if not ok:
        raise KvisionError(problem)
    if failed_somewhere:
        raise KvisionError(
            f"rank {rank()} stops with the others: another rank's check failed "
            "(its message is in that node's output)."
        )


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (one tiny all-reduce; this rank's flag when not
    distributed). Every rank must call it at the same point."""
    if not is_distributed():
        return flag
    import torch

    dist = _dist()
    value = torch.tensor([1.0 if flag else 0.0], device=collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def collective_device() -> str:
    """Where a collective's tensors live: NCCL reduces CUDA tensors only, gloo CPU ones."""
    return "cuda" if _dist().get_backend() == "nccl" else "cpu"


def agree_stop(stop: StopFlag) -> bool:
    """Whether any rank was asked to stop (Ctrl-C, SIGTERM); a rank that was not (another
    machine's was) gets its flag set as if by SIGTERM, so every rank checkpoints and exits.

    Every stop check must agree: the machines' signals come moments apart, and a rank that
    stopped after an epoch while another, its signal a moment later, went on left that one
    broadcasting the next epoch's weights to a peer that had gone ("Connection closed by
    peer"): the run ended failed instead of interrupted and resumable.

    The answer is the all-reduce's alone, never the flag read again: a signal landing just
    after the all-reduce returned set one rank's flag only, that rank stopped while the
    others trained on, and gloo aborted on a gradient chunk meeting the stopped rank's metric
    all-reduce ("324 vs 8 bytes", left the run stale). Such a late flag stays set and is agreed
    on at the next check."""
    agreed = any_rank(bool(stop))
    if agreed and not stop:
        stop.signame = "SIGTERM"
    return agreed


def stop_together(stop: StopFlag) -> None:
    """Raise StopRequested on every rank if any rank was asked to stop (:func:`agree_stop`)."""
    if agree_stop(stop):  # then this rank's flag is set too
        stop.raise_if_set()


def shared_dir_problem(path: Path) -> str:
    """The message for a rank that cannot see the run directory node 0 made."""
    return (
        f"rank {rank()} on {socket.gethostname()} cannot see the run directory '{path}' "
        "that rank 0 uses. Every rank reads checkpoints from it, so a run over several "
        "machines needs the runs folder on a filesystem they share at the same path "
        "(e.g. NFS), with --runs-dir or --run-dir pointing into it."
    )


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


# -- the named hooks: what only rank 0 does, and where the others wait for it -------------


def open_writer(run_dir: str | os.PathLike) -> Any:
    """The run directory's writer for this rank: a RunWriter on rank 0, a FollowerWriter
    (every write dropped) on the others, so code that writes events needs no rank check."""
    from kvision.runs import RunWriter

    return RunWriter(run_dir) if is_main() else FollowerWriter(run_dir)


def main_only(fn: F) -> F:
    """A step only rank 0 takes (files of the run directory); the other ranks skip it."""

    @functools.wraps(fn)
    def on_main(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if is_main() else None

    return on_main  # type: ignore[return-value]


def main_writes(fn: F) -> F:
    """A file rank 0 writes that every rank reads next: the others wait until it is complete."""

    @functools.wraps(fn)
    def then_all(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs) if is_main() else None
        barrier()
        return result

    return then_all  # type: ignore[return-value]
