"""The PyTorch sides of ``kvision bench``: the reports' plain loop and a tuned one.

Both build the twin module of :mod:`kvision.bench.reference` and train it with
``CrossEntropyLoss`` and Adam (lr 1e-3, eps 1e-7, as Keras') on the same uint8 images.

* **plain** is the loop of the reports' code: a ``DataLoader`` over NCHW uint8 tensors,
  normalisation in the loop, default (for-each) Adam, ``loss.item()`` and the accuracy read
  back every step, ``torch.no_grad()`` for inference.
* **tuned** is what a PyTorch engineer would write for speed: the module and its inputs in
  channels-last memory format (the NHWC images permuted, a view, no copy), batches sliced
  from one tensor (no per-image collation), normalisation as one in-place multiply-add,
  ``Adam(fused=True)``, loss and accuracy summed on the device with one host sync per pass,
  ``torch.inference_mode()``, optionally ``torch.compile`` and, on CUDA, autocast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MEAN_STD = ([0.5], [0.5])


@dataclass
class TorchSide:
    """A pass over the data, and what the side used (for the JSON row)."""

    run: Callable[[], None]
    used: dict = field(default_factory=dict)


def twin_model(case, device):
    """The case's PyTorch twin module (:mod:`kvision.bench.reference`) on ``device``."""
    from kvision.bench.reference import build_reference

    return build_reference(
        case.arch,
        in_channels=case.channels,
        size=case.size,
        num_classes=case.num_classes,
        options=case.options,
    ).to(device)


def _autocast(device, mixed: bool):
    """fp16 autocast on CUDA when mixed precision is asked for; a no-op context otherwise."""
    import contextlib

    import torch

    if mixed and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def plain_side(
    case, images: np.ndarray, labels: np.ndarray, mode: str, device, *, mixed: bool = False
) -> TorchSide:
    """(b): the reports' loop: DataLoader, normalise, forward, CrossEntropyLoss, Adam."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model = twin_model(case, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    scaler = torch.amp.GradScaler(enabled=mixed and device.type == "cuda")
    criterion = torch.nn.CrossEntropyLoss()
    data = TensorDataset(torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels))
    loader = DataLoader(data, batch_size=case.batch_size, shuffle=mode == "train")
    mean, std = (torch.tensor(v, device=device).view(1, -1, 1, 1) for v in MEAN_STD)

    def prepare(x):
        return (x.to(device, non_blocking=True).float() / 255 - mean) / std

    def train() -> None:
        model.train()
        running_loss, correct = 0.0, 0
        for x, y in loader:
            y = y.to(device, non_blocking=True)
            optimizer.zero_grad()
            with _autocast(device, mixed):
                outputs = model(prepare(x))
                loss = criterion(outputs, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            # The reports' loops log loss and accuracy per step (two host syncs a step).
            running_loss += loss.item()
            correct += int((outputs.argmax(1) == y).sum())

    def infer() -> None:
        model.eval()
        with torch.no_grad(), _autocast(device, mixed):
            torch.cat([model(prepare(x)) for x, _ in loader]).cpu()

    return TorchSide(train if mode == "train" else infer, {"mixed_precision": mixed})


def tuned_side(
    case,
    images: np.ndarray,
    labels: np.ndarray,
    mode: str,
    device,
    *,
    compile: bool = False,
    mixed: bool = False,
) -> TorchSide:
    """(c): channels-last, sliced batches, fused Adam, device-side metrics, inference_mode."""
    import torch

    model = twin_model(case, device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, fused=True)
    scaler = torch.amp.GradScaler(enabled=mixed and device.type == "cuda")
    criterion = torch.nn.CrossEntropyLoss()
    used = {
        "channels_last": True,
        "fused_adam": True,
        "inference_mode": mode == "infer",
        "compile": False,
        "mixed_precision": mixed,
    }
    forward = model
    if compile:
        try:
            forward = torch.compile(model)
            used["compile"] = True
        except Exception as exc:  # noqa: BLE001 - the row says why and the eager model runs
            used["compile_error"] = f"{type(exc).__name__}: {exc}"[:300]
    nhwc = torch.from_numpy(images).to(device)  # uint8 on the device, as a loader would put it
    targets = torch.from_numpy(labels).to(device)
    mean, std = MEAN_STD[0][0], MEAN_STD[1][0]
    scale, shift = 1 / (255 * std), -mean / std  # (x / 255 - mean) / std as one multiply-add
    generator = torch.Generator().manual_seed(0)

    def batches(shuffle: bool):
        order = torch.randperm(len(targets), generator=generator).to(device) if shuffle else None
        for start in range(0, len(targets), case.batch_size):
            index = slice(start, start + case.batch_size)
            if order is not None:
                index = order[index]
            # NHWC memory read as NCHW: torch's channels_last layout, without a copy.
            x = nhwc[index].permute(0, 3, 1, 2).float().mul_(scale).add_(shift)
            yield x, targets[index]

    def train() -> None:
        forward.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for x, y in batches(shuffle=True):
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, mixed):
                outputs = forward(x)
                loss = criterion(outputs, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach()
            correct += (outputs.argmax(1) == y).sum()
        float(loss_sum), int(correct)  # the pass's metrics, one host sync

    def infer() -> None:
        forward.eval()
        with torch.inference_mode(), _autocast(device, mixed):
            torch.cat([forward(x) for x, _ in batches(shuffle=False)]).cpu()

    return TorchSide(train if mode == "train" else infer, used)


def first_pass(run: Callable[[], None], sync: Callable[[], None]) -> float:
    """Seconds of a side's first (warm-up) pass: compiling, kernels' first calls."""
    sync()
    start = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - start
