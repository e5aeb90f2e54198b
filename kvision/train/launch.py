"""``kvision run --gpus N``: start the data-parallel ranks with torchrun, on one machine or
several (``--nnodes``); no Keras import."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Nodes:
    """Where this machine stands in a multi-node run: ``count`` machines, this one ``rank``,
    all meeting at ``endpoint`` (HOST:PORT of node 0, which also writes the run directory)."""

    count: int = 1
    rank: int = 0
    endpoint: str | None = None

    def check(self) -> None:
        """User mistakes in --nnodes / --node-rank / --rdzv-endpoint, as KvisionError."""
        from kvision.errors import KvisionError

        if self.count < 1:
            raise KvisionError(f"--nnodes must be at least 1, got {self.count}.")
        if not 0 <= self.rank < self.count:
            raise KvisionError(
                f"--node-rank {self.rank} is outside 0..{self.count - 1} "
                f"(--nnodes {self.count}); number the machines from 0, and give "
                "0 to the one at --rdzv-endpoint."
            )
        if self.count > 1 and not self.endpoint:
            raise KvisionError(
                f"--nnodes {self.count} needs --rdzv-endpoint HOST:PORT: the "
                "address of node 0 that every node can reach, e.g. "
                "--rdzv-endpoint 10.0.0.1:29500."
            )
        host, _, port = (self.endpoint or "").rpartition(":")
        if self.endpoint and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise KvisionError(
                f"--rdzv-endpoint '{self.endpoint}' is not HOST:PORT (e.g. 10.0.0.1:29500)."
            )

    def torchrun_args(self) -> list[str]:
        """One node: ``--standalone``; several: torchrun's static rendezvous at node 0."""
        if self.count == 1:
            return ["--standalone"]
        return [
            f"--nnodes={self.count}",
            f"--node-rank={self.rank}",
            "--rdzv-backend=static",
            f"--rdzv-endpoint={self.endpoint}",
        ]


# The options of `kvision run` that only `kvision run` itself reads: the ranks run without them.
LAUNCH_OPTIONS = ("--gpus", "--nnodes", "--node-rank", "--rdzv-endpoint")


def launch(nprocs: int, argv: list[str], nodes: Nodes | None = None) -> int:
    """``kvision run --gpus N ...``: become ``torchrun`` running ``kvision <argv>`` as N ranks.

    ``argv`` is the command line after ``kvision`` (the launch options are dropped from it, so
    the ranks run the plain command). With ``nodes`` of more than one machine, the same
    command runs on each with its own ``--node-rank``; torchrun's static rendezvous at
    ``nodes.endpoint`` joins them. The process is replaced (``exec``), so Ctrl-C and SIGTERM
    reach torchrun, which passes them to every rank; returns only in tests that stub exec.
    """
    from kvision.errors import KvisionError

    nodes = nodes or Nodes()
    if nprocs < 1:
        raise KvisionError(f"--gpus must be at least 1, got {nprocs}.")
    nodes.check()
    if torch.cuda.is_available() and nprocs > torch.cuda.device_count():
        raise KvisionError(
            f"--gpus {nprocs} asks for more GPUs than this machine has "
            f"({torch.cuda.device_count()})."
        )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *nodes.torchrun_args(),
        f"--nproc-per-node={nprocs}",
        "-m",
        "kvision",
        *_without_launch_options(argv),
    ]
    os.execv(sys.executable, cmd)
    return 0  # not reached: exec replaced this process


def _without_launch_options(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LAUNCH_OPTIONS)):
            out.append(arg)
    return out
