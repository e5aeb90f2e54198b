"""``function:`` sources: (x, y) samples of a formula for report 002's function fitting.

Training and validation x are drawn uniformly from the domain (seeded) with optional
Gaussian noise on y; the test split is an even grid without noise, so its error is the fit's
distance from the true curve. Everything is a pure function of the recipe and the seed, so a
resumed run regenerates the same pairs.
"""

from __future__ import annotations

import numpy as np

from kvision.data.dataset import Dataset, Split
from kvision.errors import RecipeError
from kvision.recipe.formula import evaluate_formula
from kvision.recipe.schema_data import DataSection


def load_function_dataset(data: DataSection, seed: int) -> Dataset:
    """Train/val/test (x, y) splits of ``data.source``'s formula, as float32 arrays."""
    formula = data.formula
    spec = data.function
    low, high = spec.domain
    rng = np.random.default_rng([seed, 8191])
    xs = {
        "train": rng.uniform(low, high, spec.train_points),
        "val": rng.uniform(low, high, spec.val_points),
        "test": np.linspace(low, high, spec.test_points),
    }
    splits = {}
    for name, x in xs.items():
        y = evaluate_formula(formula, x)
        if not np.all(np.isfinite(y)):
            bad = float(x[~np.isfinite(y)][0])
            raise RecipeError(
                f"the formula '{formula}' is not finite at x = {bad:g}, inside the "
                f"domain {list(spec.domain)}; narrow data.function.domain.",
                key="data.source",
            )
        if name != "test" and spec.noise:
            y = y + rng.normal(0.0, spec.noise, len(y))
        splits[name] = Split(x.astype(np.float32)[:, None], y.astype(np.float32))
    info = {
        "source": data.source,
        "formula": formula,
        "domain": list(spec.domain),
        "noise": spec.noise,
        "counts": {s: len(v) for s, v in splits.items()},
        "image_shape": [1],
        "skipped": [],
    }
    return Dataset(f"function: {formula}", [], splits, info)


def truth_curve(data: DataSection, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the noise-free formula on an even grid over the domain, for plots."""
    x = np.linspace(*data.function.domain, points)
    return x, evaluate_formula(data.formula, x)
