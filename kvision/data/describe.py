"""A plain-text summary of a loaded dataset (``kvision data``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kvision.data.dataset import Dataset
from kvision.data.load import load_dataset
from kvision.data.normalize import normalization
from kvision.errors import RecipeErrors
from kvision.recipe.schema_data import DataSection
from kvision.recipe.spec import Context, parse

DEFAULT_SEED = 42


def describe_target(
    target: str,
    *,
    overrides: Sequence[str] = (),
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
    seed: int | None = None,
    max_skipped: int = 20,
) -> str:
    """Load a recipe's [data] (or a bare source) and describe the result."""
    if target.endswith(".toml") or Path(target).is_file():
        from kvision.recipe.load import load_recipe

        recipe = load_recipe(target, list(overrides))
        data, seed = recipe.data, seed if seed is not None else recipe.experiment.seed
    else:
        table = {"source": target}
        if image_size:
            table["image_size"] = list(image_size)
        if channels:
            table["channels"] = channels
        ctx = Context()
        data = parse(DataSection, table, ctx, "data")
        if ctx.errors:
            raise RecipeErrors(ctx.errors)
    seed = DEFAULT_SEED if seed is None else seed
    return describe(load_dataset(data, seed), data, max_skipped=max_skipped)


def describe(ds: Dataset, data: DataSection, *, max_skipped: int = 20) -> str:
    """Classes, counts per split and class, skipped files and normalisation, as text."""
    info = ds.info
    if data.regression:
        return _describe_pairs(ds)
    h, w, c = ds.image_shape
    lines = [f"{ds.name}: {ds.num_classes} classes, images {h}x{w}x{c} (uint8)"]
    lines.append("split counts: " + ", ".join(f"{s} {n}" for s, n in info["counts"].items()))
    width = max(len(n) for n in ds.class_names)
    header = " ".join(f"{s:>7}" for s in info["class_counts"])
    lines.append(f"{'class':<{width}}  {header}   (source: before split/balance)")
    for name in ds.class_names:
        row = " ".join(f"{info['class_counts'][s][name]:>7}" for s in info["class_counts"])
        before = ", ".join(
            f"{s} {counts[name]}" for s, counts in info["class_counts_before"].items()
        )
        lines.append(f"{name:<{width}}  {row}   ({before})")
    mean, std = normalization(data, ds)
    lines.append(f"normalize = {data.normalize}: mean {_fmt(mean)}, std {_fmt(std)}")
    if "cache_hit" in info:
        lines.append(
            f"cache: {'reused' if info['cache_hit'] else 'written'} (KVISION_CACHE or "
            f"~/.cache/kvision)"
        )
    skipped = info.get("skipped", [])
    lines.append(f"skipped files: {len(skipped)}")
    lines += [f"  {s['path']}: {s['reason']}" for s in skipped[:max_skipped]]
    if len(skipped) > max_skipped:
        lines.append(f"  ... and {len(skipped) - max_skipped} more")
    return "\n".join(lines)


def _fmt(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def _describe_pairs(ds: Dataset) -> str:
    """A function: source's (x, y) splits: counts and the range of x and y in each."""
    info = ds.info
    lines = [
        f"{ds.name}: (x, y) pairs for a regression, domain {info['domain']}, "
        f"noise {info['noise']:g} on train/val targets (test: the noise-free curve)"
    ]
    for name, split in ds.splits.items():
        x, y = split.images[:, 0], split.labels
        lines.append(
            f"{name:<5} {len(y):>8} pairs   x in [{x.min():.3f}, {x.max():.3f}]   "
            f"y in [{y.min():.3f}, {y.max():.3f}]"
        )
    return "\n".join(lines)
