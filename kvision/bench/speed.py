"""Training/inference speed of kvision's Keras models against the same model in plain PyTorch.

For one case (architecture, input size, batch size, steps) side (a) is kvision as users run
it: ``create_model`` with the preprocess layer, ``compile_model`` as the runner compiles,
``model.fit`` for one epoch on ``kvision.data.make_batches`` (``model.predict`` for
inference). Side (b) is the reports' PyTorch loop over a ``DataLoader``: the twin module of
:mod:`kvision.bench.reference`, ``CrossEntropyLoss`` and ``Adam`` with the same settings.
Both see the same uint8 images. One warm-up pass of each is not timed; a second, timed but
not reported, sets how many passes over the data each timed repeat makes, so that every
timing covers at least ``min_seconds`` (short timings mostly measure the machine's jitter).
The timed repeats then alternate (a) and (b) in this process, so machine load hits both, and
the ratio (a)/(b) is reported per repeat as min/median/max, and as best/best: each side's
fastest repeat, the one least slowed by other processes (as ``timeit`` advises).
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

MEAN_STD = ([0.5], [0.5])


@dataclass(frozen=True)
class Case:
    """One benchmark case: a kvision architecture at an input size, and its batches."""

    name: str
    arch: str
    size: int
    channels: int
    num_classes: int
    batch_size: int
    steps: int
    options: dict = field(default_factory=dict)


def default_cases(gpu: bool) -> list[Case]:
    """The issue's cases; VGG11 runs at 1/8 width on CPU (full width is hours per epoch there)."""
    vgg_width = 1 if gpu else 8
    scale = 4 if gpu else 1  # more steps on a GPU, where a step takes milliseconds
    return [
        Case("lenet-28-gray", "lenet", 28, 1, 10, 128, 20 * scale),
        Case("alexnet_seed/2-64", "alexnet_seed", 64, 3, 2, 32, 10 * scale, {"downscale": 2}),
        Case("alexnet_seed/2-128", "alexnet_seed", 128, 3, 2, 32, 6 * scale, {"downscale": 2}),
        Case(f"vgg11/{vgg_width}-64", "vgg11", 64, 3, 10, 32, 6 * scale, {"width": vgg_width}),
        Case("resnet18-64", "resnet18", 64, 3, 10, 32, 4 * scale),
    ]


@dataclass
class CaseResult:
    """Images/s of each side per repeat, their ratio, and memory, for one case and mode."""

    case: str
    mode: str  # "train" or "infer"
    device: str
    threads: int
    batch_size: int
    steps: int
    passes: int  # over the case's steps, per timed repeat
    kvision_ips: list[float]
    torch_ips: list[float]
    peak_rss_mb: float
    cuda_peak_mb: dict[str, float] | None = None

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.kvision_ips, self.torch_ips, strict=True)]

    def summary(self) -> dict:
        """The result as plain JSON-able values, with the ratio's min/median/max and best/best."""
        ratios = self.ratios
        return {**asdict(self), "ratio": {
            "min": min(ratios), "median": statistics.median(ratios), "max": max(ratios),
            "best": max(self.kvision_ips) / max(self.torch_ips)}}


def _data(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    count = case.batch_size * case.steps
    images = rng.integers(0, 256, size=(count, case.size, case.size, case.channels),
                          dtype=np.uint8)
    return images, rng.integers(0, case.num_classes, size=count)


def _kvision_side(case: Case, images: np.ndarray, labels: np.ndarray, mode: str) -> Callable[[], None]:
    """(a): kvision's model, compiled as the runner does, fed by make_batches."""
    from kvision.data import make_batches
    from kvision.models import create_model
    from kvision.recipe.schema_training import OptimizerSpec, TrainingSection
    from kvision.train.compile import compile_model

    model = create_model(case.arch, input_shape=(case.size, case.size, case.channels),
                         num_classes=case.num_classes, preprocess=MEAN_STD, **case.options)
    compile_model(model, TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    batches = make_batches(images, labels, batch_size=case.batch_size, seed=0,
                           shuffle=mode == "train")
    if mode == "train":
        return lambda: model.fit(batches, epochs=1, verbose=0, shuffle=False)
    return lambda: model.predict(batches, verbose=0)


def _torch_side(case: Case, images: np.ndarray, labels: np.ndarray, mode: str,
                device) -> Callable[[], None]:
    """(b): the reports' loop: DataLoader, normalise, forward, CrossEntropyLoss, Adam."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from kvision.bench.reference import build_reference

    model = build_reference(case.arch, in_channels=case.channels, size=case.size,
                            num_classes=case.num_classes, options=case.options).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
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
            outputs = model(prepare(x))
            loss = criterion(outputs, y)
            loss.backward()
            optimizer.step()
            # The reports' loops log loss and accuracy per step (two host syncs a step).
            running_loss += loss.item()
            correct += int((outputs.argmax(1) == y).sum())

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            torch.cat([model(prepare(x)) for x, _ in loader]).cpu()

    return train if mode == "train" else infer


def _seconds(run: Callable[[], None], passes: int, sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(passes):
        run()
    sync()
    return time.perf_counter() - start


def _passes_for(sides: dict[str, Callable[[], None]], min_seconds: float,
                sync: Callable[[], None]) -> int:
    """Passes per timed repeat so that the faster side's timing lasts ``min_seconds``."""
    fastest = min(_seconds(run, 1, sync) for run in sides.values())
    return max(1, math.ceil(min_seconds / fastest))


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_case(case: Case, mode: str, *, repeats: int = 3, min_seconds: float = 0.0) -> CaseResult:
    """Warm up both sides once, then time ``repeats`` alternating (a)/(b) repeats, each of
    as many passes over the data as make the faster side take ``min_seconds`` or more."""
    import torch

    import kvision  # noqa: F401  (torch backend before keras)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    images, labels = _data(case)
    sides = {"kvision": _kvision_side(case, images, labels, mode),
             "torch": _torch_side(case, images, labels, mode, device)}
    for run in sides.values():
        run()  # warm-up: kernels, Keras' train function, optimizer slots
    passes = _passes_for(sides, min_seconds, sync) if min_seconds > 0 else 1
    speeds: dict[str, list[float]] = {name: [] for name in sides}
    cuda_peak: dict[str, float] = {}
    for _ in range(repeats):
        for name, run in sides.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            speeds[name].append(len(labels) * passes / _seconds(run, passes, sync))
            if device.type == "cuda":
                cuda_peak[name] = torch.cuda.max_memory_allocated() / 2**20
    return CaseResult(case.name, mode, device.type, torch.get_num_threads(), case.batch_size,
                      case.steps, passes, speeds["kvision"], speeds["torch"], peak_rss_mb(),
                      cuda_peak or None)


def format_table(results: list[CaseResult]) -> str:
    """A fixed-width table: images/s (median) of each side and the ratio's spread."""
    lines = [f"{'case':<22}{'mode':<7}{'kvision img/s':>14}{'torch img/s':>13}"
             f"{'ratio min/med/max':>22}{'best':>6}{'peak RSS MiB':>14}"]
    for r in results:
        ratio = r.summary()["ratio"]
        lines.append(
            f"{r.case:<22}{r.mode:<7}{statistics.median(r.kvision_ips):>14.0f}"
            f"{statistics.median(r.torch_ips):>13.0f}"
            f"{ratio['min']:>8.2f}/{ratio['median']:.2f}/{ratio['max']:.2f}{ratio['best']:>6.2f}"
            f"{r.peak_rss_mb:>14.0f}")
    return "\n".join(lines)


def markdown_table(results: list[CaseResult], threads: int, min_seconds: float) -> str:
    """The same figures as :func:`format_table`, as a Markdown table for the docs."""
    lines = [f"Device {results[0].device}, {threads} torch threads, timed repeats of at least "
             f"{min_seconds:g} s, {len(results[0].kvision_ips)} repeats per side.", "",
             "| case | mode | kvision img/s (median) | PyTorch img/s (median) | "
             "ratio min / median / max | best / best | peak RSS MiB |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in results:
        ratio = r.summary()["ratio"]
        lines.append(f"| `{r.case}` | {r.mode} | {statistics.median(r.kvision_ips):,.0f} | "
                     f"{statistics.median(r.torch_ips):,.0f} | {ratio['min']:.2f} / "
                     f"{ratio['median']:.2f} / {ratio['max']:.2f} | {ratio['best']:.2f} | "
                     f"{r.peak_rss_mb:,.0f} |")
    return "\n".join(lines) + "\n"
