"""``kvision export --check``: each exported file against the Keras model it came from, on the
run's own test images under every evaluated condition (clear and blurred alike).

The export itself checks a few random images; this check uses the images the run was
evaluated on, so a difference that only shows on real (or blurred) inputs is seen: top-1
agreement and the largest absolute difference of the outputs, one row per condition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvision.errors import KvisionError, printable

#: Test images compared per condition (the first of the run's test split, in its order).
CHECK_IMAGES = 256


def run_test_views(run: Path) -> dict[str, np.ndarray]:
    """The run's test images (uint8, the first CHECK_IMAGES) under each evaluated condition,
    rebuilt from its recipe.toml and split.json as the run saw them."""
    from kvision.data import load_dataset
    from kvision.data.feed import Feed
    from kvision.recipe import load_recipe
    from kvision.runs import RunReader

    recipe = load_recipe(run / "recipe.toml")
    manifest = RunReader(run).split_manifest()
    dataset = load_dataset(
        recipe.data, recipe.experiment.seed, manifest=manifest, conditions=recipe.conditions
    )
    feed = Feed(dataset, recipe)
    if not feed.has_split("test"):
        raise KvisionError(
            f"kvision export --check compares on the run's test images, and the run in "
            f"'{printable(run)}' has no test split."
        )
    names = recipe.evaluate.conditions or tuple(recipe.conditions)
    return {name: np.asarray(feed.view(name, "test")[0][:CHECK_IMAGES]) for name in names}


def check_rows(source: Path, exported: Path, views: dict[str, np.ndarray]) -> list[dict]:
    """Per condition: images compared, top-1 agreement and max |difference| of the outputs
    of ``exported`` (any format predict reads) against the Keras model ``source``."""
    from kvision.portable.loading import load_checked
    from kvision.portable.predict import RUNNERS

    model = load_checked(source)
    runner = RUNNERS[exported.suffix](exported)
    rows = []
    for condition, images in views.items():
        x = images.astype(np.float32)
        want = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
        got = np.asarray(runner(x), dtype=np.float64)
        rows.append(
            {
                "condition": condition,
                "images": len(x),
                "top1_agreement": float(np.mean(want.argmax(-1) == got.argmax(-1))),
                "max_abs_diff": float(np.max(np.abs(got - want))),
            }
        )
    return rows


def format_check(trial: str, exported: Path, rows: list[dict]) -> str:
    """A small table: the file, then one line per condition."""
    lines = [f"check {printable(exported.name)} vs {printable(trial)}'s Keras model:"]
    lines.append(f"  {'condition':<12} {'images':>6}  {'top-1 agrees':>12}  {'max |diff|':>10}")
    for r in rows:
        lines.append(
            f"  {printable(r['condition']):<12} {r['images']:>6}  "
            f"{100 * r['top1_agreement']:>11.1f}%  {r['max_abs_diff']:>10.2e}"
        )
    return "\n".join(lines)
