"""The ``[sweep]`` section: which recipe keys a sweep varies, how, and what it optimises.

```toml
[sweep]
sampler = "random"                     # grid | random | bayes (Optuna's TPE)
trials = 20
objective = "test.clear.accuracy"      # SPLIT.CONDITION.accuracy|r2|loss, or an epoch metric
parallel = 2

[sweep.params]
"training.optimizer.name" = ["adam", "sgd"]                        # choices
"training.optimizer.learning_rate" = { low = 1e-5, high = 1e-2, log = true }
"training.batch_size" = { low = 16, high = 128, step = 16 }        # ints -> an int range
```
Never imports keras, torch or optuna.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from kvision.recipe.spec import INVALID, Context, option, parse

SAMPLERS = ("grid", "random", "bayes")
DIRECTIONS = ("auto", "maximize", "minimize")
# mae and r2 are a function-fitting (regression) run's: its epochs report mae, its
# evaluation matrix holds R^2 and its loss table the MSE.
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "mae", "val_mae")
MATRIX_METRICS = ("accuracy", "r2", "loss")
_MATRIX_RE = re.compile(r"(train|val|test)\.([A-Za-z0-9][A-Za-z0-9_.-]*)\.(accuracy|r2|loss)")


@dataclass(frozen=True)
class RangeSpec:
    """A numeric range: integers when low, high (and step) are integers, else floats."""

    low: int | float = option(help="Smallest value.")
    high: int | float = option(help="Largest value.")
    log: bool = option(False, help="Sample on a log scale (learning rates, weight decay).")
    step: int | float | None = option(
        None, help="Spacing of the values (required for grid sweeps).", gt=0
    )

    @property
    def is_int(self) -> bool:
        """Whether the range holds integers (all bounds written as integers)."""
        return all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))

    def check(self) -> list[tuple[str, str]]:
        """Bounds in order; log ranges positive and unstepped (Optuna's rules)."""
        problems = []
        if self.low > self.high:
            problems.append(("low", f"low ({self.low}) must not exceed high ({self.high})."))
        if self.log and self.low <= 0:
            problems.append(("low", f"a log range needs low > 0, got {self.low}."))
        if self.log and self.step is not None:
            problems.append(("step", "a range cannot be both log and stepped; drop one of them."))
        return problems


@dataclass(frozen=True)
class SweepSection:
    """A hyper-parameter sweep over recipe keys; each trial is a normal run."""

    params: dict[str, Any] = option(
        help="Recipe key path -> choices (an array) or a range ({low, high, log, step}).", min_len=1
    )
    sampler: str = option(
        "random", help="grid (every combination), random, or bayes (TPE).", choices=SAMPLERS
    )
    # 20 trials: enough for TPE to move past its random start-up trials (10 by default).
    trials: int | None = option(
        20, help="Trial budget (grid: default and cap = grid size).", ge=1, le=100000
    )
    objective: str = option(
        "val_accuracy",
        help="SPLIT.CONDITION.accuracy|r2|loss of the final evaluation "
        "(e.g. test.clear.accuracy), or an epoch metric (best epoch).",
    )
    direction: str = option(
        "auto",
        help="maximize, minimize, or auto (maximize accuracy, minimize loss).",
        choices=DIRECTIONS,
    )
    parallel: int = option(1, help="Trials running at once, each a separate process.", ge=1, le=256)
    seed: int | None = option(
        None, help="Sampler seed (default: experiment.seed).", ge=0, le=2**32 - 1
    )

    def check(self) -> list[tuple[str, str]]:
        """The objective's form, non-empty choices, and grids that can be enumerated."""
        problems = []
        if objective_problem(self.objective):
            problems.append(("objective", objective_problem(self.objective)))
        for key, value in self.params.items():
            space, found = _space(value)
            problems += [(f"params.{key}" + (f".{rel}" if rel else ""), msg) for rel, msg in found]
            if self.sampler == "grid" and isinstance(space, RangeSpec) and space.step is None:
                problems.append(
                    (
                        f"params.{key}",
                        "a grid sweep needs choices or a range with "
                        "a step (e.g. { low = 16, high = 64, step = 16 }).",
                    )
                )
        return problems

    @cached_property
    def spaces(self) -> dict[str, tuple[Any, ...] | RangeSpec]:
        """Each swept key's space: a tuple of choices or a :class:`RangeSpec`."""
        return {key: _space(value)[0] for key, value in self.params.items()}

    @property
    def maximize(self) -> bool:
        """Whether a larger objective is better."""
        if self.direction != "auto":
            return self.direction == "maximize"
        return not self.objective.endswith(("loss", "mae"))


def _space(value: Any) -> tuple[Any, list[tuple[str, str]]]:
    """(choices tuple or RangeSpec, problems as (relative key, message))."""
    if isinstance(value, list):
        return tuple(value), ([] if value else [("", "needs at least one choice.")])
    if isinstance(value, dict):
        ctx = Context()
        found = parse(RangeSpec, value, ctx)
        return (None if found is INVALID else found), [(e.key or "", e.detail) for e in ctx.errors]
    return None, [
        (
            "",
            f'expected choices (an array, e.g. ["adam", "sgd"]) or a range '
            f"(a table such as {{ low = 1e-4, high = 1e-2, log = true }}), got {value!r}.",
        )
    ]


def objective_problem(objective: str) -> str | None:
    """Why ``objective`` is not a valid objective, or None."""
    if objective in EPOCH_METRICS or _MATRIX_RE.fullmatch(objective):
        return None
    return (
        f"'{objective}' is not an objective. Use SPLIT.CONDITION.METRIC for a cell of the final "
        f"evaluation matrix (split train, val or test; metric {' or '.join(MATRIX_METRICS)}; "
        f"e.g. test.clear.accuracy), or an epoch metric ({', '.join(EPOCH_METRICS)}) whose "
        "best epoch counts."
    )


def matrix_cell(objective: str) -> tuple[str, str, str] | None:
    """(split, condition, metric) for a matrix objective, None for an epoch metric."""
    found = _MATRIX_RE.fullmatch(objective)
    return (found.group(1), found.group(2), found.group(3)) if found else None


__all__ = ["RangeSpec", "SweepSection", "matrix_cell", "objective_problem"]
