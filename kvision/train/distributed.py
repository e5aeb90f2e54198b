"""Data-parallel training of one trial over several processes with ``torch.distributed``.

Keras' ``fit`` has no DDP support on the torch backend, but it needs very little: every rank
runs ``fit`` on its shard of each global batch, and the gradients are averaged across ranks
just before the Keras optimizer applies them. So the whole of Keras' training step (loss,
L1/L2 penalties, class weights, metrics, callbacks, mixed-precision loss scaling) is kept;
this module adds the shard, the all-reduce and the epoch-metric average.

* Launch: ``torchrun --standalone --nproc-per-node N -m kvision run RECIPE`` (or
  ``kvision run --gpus N``, which runs exactly that through :func:`launch`). NCCL on GPUs,
  gloo on CPU; each rank uses GPU ``LOCAL_RANK``. Several machines: the same command on
  each with ``--nnodes M --node-rank R --rdzv-endpoint HOST:PORT`` (torchrun's static
  rendezvous at node 0); the run directory must be on a filesystem all of them share.
* Exactness: rank r takes rows r, r+W, ... of global batch i (the seeded order every rank
  shares) and weights its loss by ``n_r * W / n`` so the averaged gradient is the gradient
  of the global batch's mean loss, also for a short last batch. Dropout masks and BatchNorm
  statistics are per rank (as in plain DDP), so only models without them match a
  single-process run to rounding.
* Weights (and BatchNorm statistics) are broadcast from rank 0 at the start of every epoch,
  so all ranks start each epoch, evaluate, and decide early stopping on the same model.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import torch
import torch.distributed as dist

from kvision.train.launch import launch
from kvision.train.ranks import (
    agree_stop,
    collective_device,
    init_from_env,
    is_main,
    rank,
    world_size,
)
from kvision.train.signals import StopFlag


def fit_one_epoch(
    model: Any,
    train: Any,
    val: Any,
    *,
    class_weight: dict[int, float] | None = None,
    steps_per_epoch: int | None = None,
    callbacks: list | None = None,
    stop: StopFlag | None = None,
) -> dict[str, float]:
    """One data-parallel epoch of ``model.fit``; returns the epoch metrics, equal on all ranks.

    ``train`` is the global batch sequence (same seeded order on every rank); ``val`` is
    evaluated whole on every rank, so val metrics need no reduction beyond the average.
    ``stop`` says whether this rank was asked to stop (Ctrl-C, SIGTERM); all ranks then stop
    after the same batch, so none is left waiting in a collective, and a rank that was not
    asked (another machine's was) gets its flag set too, so every rank checkpoints and exits.
    """
    _broadcast_weights(model)
    _average_gradients(model.optimizer)
    shard = ShardedBatches(train, rank(), world_size(), class_weight)
    hooks = [*(callbacks or []), _StopTogether(stop if stop is not None else StopFlag())]
    history = model.fit(
        shard,
        validation_data=val,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=hooks,
        steps_per_epoch=steps_per_epoch,
    )
    metrics = {k: float(v[-1]) for k, v in history.history.items() if k != "learning_rate"}
    return average_metrics(metrics)


class _StopTogether(keras.callbacks.Callback):
    """After every batch: stop on all ranks if any rank was asked to (one tiny all-reduce)."""

    def __init__(self, stop: StopFlag) -> None:
        super().__init__()
        self.stop = stop

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.model.stop_training = agree_stop(self.stop)


def _broadcast_weights(model: Any) -> None:
    with torch.no_grad():
        for variable in model.variables:
            dist.broadcast(variable.value.data, src=0)


def _average_gradients(optimizer: Any) -> None:
    """Wrap ``optimizer.apply`` so it first averages the gradients over all ranks.

    One flat buffer, so a step costs a single collective. Idempotent: each stage compiles a
    fresh optimizer, which gets wrapped on its first epoch.
    """
    if getattr(optimizer, "_kvision_all_reduce", False):
        return
    apply, world = optimizer.apply, dist.get_world_size()

    def averaged_apply(grads: list, variables: list | None = None) -> Any:
        present = [g for g in grads if g is not None]
        flat = torch.cat([g.reshape(-1) for g in present])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world
        offset = 0
        for g in present:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        return apply(grads, variables)

    optimizer.apply = averaged_apply
    optimizer._kvision_all_reduce = True


def average_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The mean of each metric over all ranks (identical result on every rank)."""
    keys = sorted(metrics)
    values = torch.tensor(
        [metrics[k] for k in keys], dtype=torch.float64, device=collective_device()
    )
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return {
        k: round(float(v) / dist.get_world_size(), 6)
        for k, v in zip(keys, values.tolist(), strict=True)
    }


class ShardedBatches(keras.utils.PyDataset):
    """Rank ``r``'s rows of every global batch, with loss weights that keep the mean exact."""

    def __init__(
        self, batches: Any, rank: int, world: int, class_weight: dict[int, float] | None = None
    ) -> None:
        super().__init__(
            workers=getattr(batches, "workers", 1) or 1,
            use_multiprocessing=False,
            max_queue_size=getattr(batches, "max_queue_size", 10),
        )
        self.batches, self.rank, self.world, self.class_weight = batches, rank, world, class_weight

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shard = (self.rank, self.world)
        # A kvision batch sequence reads only this rank's rows (a streamed folder decodes
        # only this rank's files); any other sequence is read whole and sliced.
        read = getattr(self.batches, "get", None)
        images, labels = read(index, shard)[:2] if read else self.batches[index][:2]
        rows = slice(self.rank, None, self.world)
        x, y = images[rows], labels[rows]
        # Keras averages the weighted loss over this shard's n_r rows; times n_r * W / n,
        # the mean over ranks is the global batch's mean loss.
        weights = np.full(len(y), len(y) * self.world / len(labels), dtype=np.float32)
        if not len(y):  # a last batch shorter than W: a row that weighs nothing keeps the
            x, y = images[:1], labels[:1]  # collectives in step on every rank
            weights = np.zeros(1, dtype=np.float32)
        if self.class_weight:
            weights *= np.array([self.class_weight[int(c)] for c in y], dtype=np.float32)
        return x, y, weights


__all__ = [
    "ShardedBatches",
    "average_metrics",
    "fit_one_epoch",
    "init_from_env",
    "is_main",
    "launch",
    "rank",
    "world_size",
]
