"""Training/inference speed of kvision's Keras models against the same model in PyTorch.

For one case (architecture, input size, batch size, steps) side (a) is kvision as users run
it: ``create_model`` with the preprocess layer, ``compile_model`` as the runner compiles,
``model.fit`` for one epoch on ``kvision.data.make_batches`` (``model.predict`` for
inference). Side (b), "plain", is the reports' PyTorch loop over a ``DataLoader``: the twin
module of :mod:`kvision.bench.reference`, ``CrossEntropyLoss`` and ``Adam`` with the same
settings. Side (c), "tuned", is the same module written the way a PyTorch engineer tunes it
for a CPU: channels-last tensors (a view of the NHWC uint8 images, no copy), whole batches
sliced from one tensor instead of a ``DataLoader``'s per-image collation, ``Adam(fused=True)``,
loss and accuracy summed on the device (one host sync per pass), ``torch.inference_mode()``
for inference, and, with ``compile=True``, ``torch.compile`` (its compile time reported
apart, never in the rate).

All sides see the same uint8 images. One warm-up pass of each is not timed; a second, timed
but not reported, sets how many passes over the data each timed repeat makes, so that every
timing covers at least ``min_seconds`` (short timings mostly measure the machine's jitter).
The timed repeats then alternate the sides in this process, the order rotated each repeat,
so machine load hits all of them; the ratios kvision/plain and kvision/tuned are reported
per repeat as min/median/max, and as best/best: each side's fastest repeat, the one least
slowed by other processes (as ``timeit`` advises). A repeat whose rate is more than
``DISTURBED`` away from its side's median is listed as disturbed, never dropped silently.
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

from kvision.bench import baselines
from kvision.bench.baselines import MEAN_STD


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


#: A repeat whose rate is further than this from its side's median is flagged as disturbed.
DISTURBED = 0.25
#: The issue's targets, kvision / PyTorch, per side: median at least this, no repeat below 0.9x.
TARGETS = {"ratio": 1.0, "ratio_tuned": 0.9}
SIDES = ("kvision", "torch", "tuned")


@dataclass
class CaseResult:
    """Images/s of each side per repeat, their ratios, and memory, for one case and mode."""

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
    tuned_ips: list[float] = field(default_factory=list)
    tuned: dict = field(default_factory=dict)  # what the tuned side used (compile, errors...)
    compile_seconds: float | None = None  # the tuned side's torch.compile, not in its rate
    capture_seconds: float | None = None  # kvision's forward capture (infer), not in its rate
    cuda_peak_mb: dict[str, float] | None = None

    @property
    def ratios(self) -> list[float]:
        return _ratios(self.kvision_ips, self.torch_ips)

    @property
    def ratios_tuned(self) -> list[float]:
        return _ratios(self.kvision_ips, self.tuned_ips)

    def disturbed(self) -> list[dict]:
        """Repeats (numbered from 1) whose rate is more than DISTURBED from their side's median."""
        flagged = []
        for side in SIDES:
            rates = getattr(self, f"{side}_ips")
            if len(rates) < 3:  # a median of one or two says nothing about outliers
                continue
            median = statistics.median(rates)
            for i, rate in enumerate(rates):
                if abs(rate / median - 1) > DISTURBED:
                    flagged.append(
                        {
                            "repeat": i + 1,
                            "side": side,
                            "ips": rate,
                            "vs_median": round(rate / median, 3),
                        }
                    )
        return sorted(flagged, key=lambda d: (d["repeat"], d["side"]))

    def summary(self) -> dict:
        """Plain JSON-able values: the ratios' min/median/max and best/best, disturbed
        repeats, and whether each target is met (median, and no repeat below 0.9x it)."""
        out = {**asdict(self), "ratio": _spread(self.kvision_ips, self.torch_ips)}
        out["ratio_tuned"] = _spread(self.kvision_ips, self.tuned_ips) if self.tuned_ips else None
        out["disturbed"] = self.disturbed()
        out["targets"] = {
            key: meets_target(out[key], target) for key, target in TARGETS.items() if out[key]
        }
        return out


def _ratios(ours: list[float], theirs: list[float]) -> list[float]:
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def _spread(ours: list[float], theirs: list[float]) -> dict[str, float]:
    ratios = _ratios(ours, theirs)
    return {
        "min": min(ratios),
        "median": statistics.median(ratios),
        "max": max(ratios),
        "best": max(ours) / max(theirs),
    }


def meets_target(spread: dict[str, float], target: float) -> bool:
    """The issue's rule: median at least ``target`` and no repeat below 0.9 x ``target``."""
    return spread["median"] >= target and spread["min"] >= 0.9 * target


def case_data(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The case's random uint8 images (its batches' worth) and labels, the same every call."""
    rng = np.random.default_rng(seed)
    count = case.batch_size * case.steps
    images = rng.integers(0, 256, size=(count, case.size, case.size, case.channels), dtype=np.uint8)
    return images, rng.integers(0, case.num_classes, size=count)


def case_model(case: Case):
    """kvision's model of ``case`` as a run builds it: the catalog's architecture, normalising
    inside (raw uint8 pixels in), on kvision's fast paths."""
    from kvision.models import create_model

    return create_model(
        case.arch,
        input_shape=(case.size, case.size, case.channels),
        num_classes=case.num_classes,
        preprocess=MEAN_STD,
        **case.options,
    )


def compiled_case_model(case: Case):
    """:func:`case_model` compiled as the runner compiles a stage (Adam 1e-3)."""
    from kvision.recipe.schema_training import OptimizerSpec, TrainingSection
    from kvision.train.compile import compile_model

    model = case_model(case)
    compile_model(model, TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    return model


def fit_as_a_run() -> dict:
    """``model.fit`` arguments for one epoch as a run trains it (batches ordered by the data)."""
    from kvision.train.fit import epoch_callbacks

    return {"epochs": 1, "verbose": 0, "shuffle": False, "callbacks": epoch_callbacks(0)}


def kvision_side(
    case: Case, images: np.ndarray, labels: np.ndarray, mode: str, *, mixed: bool = False
) -> tuple[Callable[[], None], float | None]:
    """(a): kvision's model, compiled as the runner does, fed by make_batches; and for
    inference the seconds its forward's capture took (None where none was made)."""
    import keras

    from kvision.data import make_batches
    from kvision.models import capture_forward

    # As the runner does for a mixed_precision recipe on CUDA (policy set before building).
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    model = compiled_case_model(case)
    batches = make_batches(
        images, labels, batch_size=case.batch_size, seed=0, shuffle=mode == "train"
    )
    if mode == "train":
        arguments = fit_as_a_run()
        return lambda: model.fit(batches, **arguments), None
    # A long inference loop runs captured once it is hot (kvision.models.capture_forward):
    # captured before timing, as the tuned side is compiled before, its seconds reported apart.
    captured = capture_forward(model, batches[0][0])
    return lambda: model.predict(batches, verbose=0), captured


def _seconds(run: Callable[[], None], passes: int, sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(passes):
        run()
    sync()
    return time.perf_counter() - start


def _passes_for(
    sides: dict[str, Callable[[], None]], min_seconds: float, sync: Callable[[], None]
) -> int:
    """Passes per timed repeat so that the faster side's timing lasts ``min_seconds``."""
    fastest = min(_seconds(run, 1, sync) for run in sides.values())
    return max(1, math.ceil(min_seconds / fastest))


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_case(
    case: Case,
    mode: str,
    *,
    repeats: int = 5,
    min_seconds: float = 0.0,
    compile: bool = False,
    mixed: bool = False,
) -> CaseResult:
    """Warm up every side once, then time ``repeats`` rounds of alternating repeats (the
    order rotated each round), each of as many passes over the data as make the fastest
    side take ``min_seconds`` or more."""
    import torch

    import kvision  # noqa: F401  (torch backend before keras)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    images, labels = case_data(case)
    tuned, compile_seconds = _warm_tuned(
        case, images, labels, mode, device, sync, compile=compile, mixed=mixed
    )
    kvision_run, capture_seconds = kvision_side(case, images, labels, mode, mixed=mixed)
    sides = {
        "kvision": kvision_run,
        "torch": baselines.plain_side(case, images, labels, mode, device, mixed=mixed).run,
        "tuned": tuned.run,
    }
    for name in ("kvision", "torch"):
        sides[name]()  # warm-up: kernels, Keras' train function, optimizer slots
    passes = _passes_for(sides, min_seconds, sync) if min_seconds > 0 else 1
    speeds: dict[str, list[float]] = {name: [] for name in sides}
    cuda_peak: dict[str, float] = {}
    names = list(sides)
    for round_ in range(repeats):
        for name in names[round_ % 3 :] + names[: round_ % 3]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            speeds[name].append(len(labels) * passes / _seconds(sides[name], passes, sync))
            if device.type == "cuda":
                cuda_peak[name] = torch.cuda.max_memory_allocated() / 2**20
    return CaseResult(
        case.name,
        mode,
        device.type,
        torch.get_num_threads(),
        case.batch_size,
        case.steps,
        passes,
        speeds["kvision"],
        speeds["torch"],
        peak_rss_mb(),
        tuned_ips=speeds["tuned"],
        tuned=tuned.used,
        compile_seconds=compile_seconds,
        capture_seconds=capture_seconds,
        cuda_peak_mb=cuda_peak or None,
    )


def _warm_tuned(
    case: Case,
    images: np.ndarray,
    labels: np.ndarray,
    mode: str,
    device,
    sync: Callable[[], None],
    *,
    compile: bool,
    mixed: bool,
) -> tuple[baselines.TorchSide, float | None]:
    """The tuned side after its warm-up pass, and the seconds torch.compile added to it.

    torch.compile compiles on the first call: that pass's time less a second (compiled)
    pass's is the compile time. If compiling fails, the eager tuned side runs instead and
    its row says why.
    """
    side = baselines.tuned_side(case, images, labels, mode, device, compile=compile, mixed=mixed)
    try:
        first = baselines.first_pass(side.run, sync)
    except Exception as exc:  # noqa: BLE001 - inductor needs a compiler, may not support an op
        if not side.used.get("compile"):
            raise
        error = f"{type(exc).__name__}: {exc}"[:300]
        side = baselines.tuned_side(case, images, labels, mode, device, mixed=mixed)
        side.used["compile_error"] = error
        baselines.first_pass(side.run, sync)
        return side, None
    if not side.used.get("compile"):
        return side, None
    return side, max(first - baselines.first_pass(side.run, sync), 0.0)


HEADER = (
    "case",
    "mode",
    "kvision img/s",
    "plain img/s",
    "tuned img/s",
    "vs plain min/med/max",
    "best",
    "vs tuned min/med/max",
    "best",
    "disturbed",
    "peak RSS MiB",
)
_WIDTHS = (22, 6, 14, 12, 12, 21, 6, 21, 6, 10, 13)


def table_rows(results: list[CaseResult]) -> list[tuple[str, ...]]:
    """One row per result: median images/s of each side, both ratios' spreads, how many
    repeats were disturbed (listed by :func:`format_disturbed`), peak RSS."""
    rows = []
    for r in results:
        summary = r.summary()
        rows.append(
            (
                r.case,
                r.mode,
                _ips(r.kvision_ips),
                _ips(r.torch_ips),
                _ips(r.tuned_ips),
                *_spread_cells(summary["ratio"]),
                *_spread_cells(summary["ratio_tuned"]),
                str(len(summary["disturbed"])),
                f"{r.peak_rss_mb:.0f}",
            )
        )
    return rows


def _ips(rates: list[float]) -> str:
    return f"{statistics.median(rates):.0f}" if rates else "-"


def _spread_cells(spread: dict[str, float] | None) -> tuple[str, str]:
    if not spread:
        return "-", "-"
    return (
        f"{spread['min']:.2f}/{spread['median']:.2f}/{spread['max']:.2f}",
        f"{spread['best']:.2f}",
    )


def format_table(results: list[CaseResult]) -> str:
    """A fixed-width table of :func:`table_rows`."""
    lines = []
    for row in [HEADER, *table_rows(results)]:
        cells = [row[0].ljust(_WIDTHS[0]), row[1].ljust(_WIDTHS[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], _WIDTHS[2:], strict=True)]
        lines.append("".join(cells))
    return "\n".join(lines)


def markdown_table(results: list[CaseResult], threads: int, min_seconds: float) -> str:
    """The figures of :func:`format_table` as Markdown for the docs, with the settings,
    the disturbed repeats and any torch.compile notes under it."""
    r0 = results[0]
    compiled = "yes" if r0.tuned.get("compile") else "no"
    lines = [
        f"Device {r0.device}, {threads} torch threads, timed repeats of at least "
        f"{min_seconds:g} s, {len(r0.kvision_ips)} alternating repeats per side, tuned "
        f"side compiled: {compiled}. Ratios are kvision / PyTorch images/s (min / median "
        "/ max over repeats; best / best).",
        "",
    ]
    rows = [
        HEADER,
        tuple("---" if i < 2 else "---:" for i in range(len(HEADER))),
        *table_rows(results),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    notes = [format_disturbed(results), format_compile(results)]
    for note in filter(None, notes):
        lines += ["", *(f"{line}  " for line in note.splitlines())]
    return "\n".join(lines) + "\n"


def format_disturbed(results: list[CaseResult]) -> str:
    """The repeats flagged as disturbed (kept in every figure above), one line each."""
    lines = []
    for r in results:
        for d in r.disturbed():
            lines.append(
                f"{r.case} {r.mode}: repeat {d['repeat']}, {d['side']} "
                f"{d['ips']:.0f} img/s = {d['vs_median']:.2f} x its median"
            )
    if not lines:
        return f"disturbed repeats (rate more than {DISTURBED:.0%} from the side's median): none"
    return "\n".join(
        [
            f"disturbed repeats (rate more than {DISTURBED:.0%} from the side's "
            "median; kept in the figures above):",
            *lines,
        ]
    )


def format_compile(results: list[CaseResult]) -> str:
    """Time spent before the timed passes, per case: kvision's forward capture (inference),
    torch.compile's when the tuned side was compiled, and any failure to compile."""
    lines = []
    for r in results:
        if r.capture_seconds is not None:
            lines.append(
                f"{r.case} {r.mode}: kvision captured its forward in {r.capture_seconds:.1f} s "
                "(not in the kvision rate)"
            )
        if r.compile_seconds is not None:
            lines.append(
                f"{r.case} {r.mode}: torch.compile took {r.compile_seconds:.1f} s "
                "(not in the tuned rate)"
            )
        if r.tuned.get("compile_error"):
            lines.append(
                f"{r.case} {r.mode}: torch.compile failed, tuned side ran eager: "
                f"{r.tuned['compile_error']}"
            )
    return "\n".join(lines)
