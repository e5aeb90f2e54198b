"""load_dataset: source -> splits -> limit -> balance -> static augmentation, with provenance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kvision.data import balance
from kvision.data.augment import check_pipeline, static_copies
from kvision.data.dataset import Dataset, Split
from kvision.data.source_blur import SourceBlur, placement, source_conditions
from kvision.data.sources import read_source
from kvision.data.splits import apply_manifest, make_splits
from kvision.errors import RecipeError
from kvision.recipe.schema_data import ConditionSection, DataSection


def load_dataset(
    data: DataSection,
    seed: int,
    *,
    manifest: dict | None = None,
    conditions: dict[str, ConditionSection] | None = None,
    progress: Callable[..., None] | None = None,
) -> Dataset:
    """Load ``[data]`` into memory as uint8 NHWC splits (float32 (x, y) for ``function:``).

    Splits the source does not provide are carved stratified and seeded from train (or from
    the pooled images when ``use_given_splits`` is false). With ``manifest`` (from
    :func:`split_manifest`) the recorded split is reproduced exactly instead. ``progress``
    receives the figures of a cache entry being built (kvision.data.progress ``sink``).
    """
    if data.regression:
        from kvision.data.function import load_function_dataset

        return load_function_dataset(data, seed)
    at_source = SourceBlur(source_conditions(conditions))
    if at_source and data.augment.static:
        raise RecipeError(
            "data.augment.static makes augmented copies of the resized images, "
            'which a blur applied at the source resolution (blur.at = "source") '
            'cannot follow; use dynamic augmentation or blur.at = "input".',
            key="data.augment.static",
        )
    if data.store == "stream":
        _check_streamable(conditions or {})
    src = read_source(data, at_source or None, progress)
    names = src.class_names
    if len(names) < 2:
        raise RecipeError(
            f"the source has {len(names)} class(es) ({', '.join(names)}); "
            f"classification needs at least 2.",
            key="data.source",
        )
    rng = np.random.default_rng([seed, 104729])
    before = {s: balance.counts_by_name(split, names) for s, split in src.splits.items()}
    if manifest is not None:
        splits = apply_manifest(Split.concat(list(src.splits.values())), manifest, names)
    else:
        splits = _split(data, src.splits, seed, rng, names)
    image_hw = splits["train"].images.shape[1:3]
    for i, ops in enumerate(data.augment.static):
        check_pipeline(ops, image_hw, f"data.augment.static[{i}]")
    check_pipeline(data.augment.dynamic, image_hw, "data.augment.dynamic")
    splits["train"] = static_copies(splits["train"], data.augment.static, seed)
    info = dict(src.info)
    info.update(
        {
            "source": data.source,
            "counts": {s: len(split) for s, split in splits.items()},
            "class_counts_before": before,
            "class_counts": {
                s: balance.counts_by_name(split, names) for s, split in splits.items()
            },
            "balance": data.balance.method,
            "image_shape": list(splits["train"].images.shape[1:]),
            "reproduced_split": manifest is not None,
        }
    )
    info.setdefault("skipped", [])
    info["blur_placement"] = placement(conditions or {}, tuple(info["image_shape"][:2]), at_source)
    return Dataset(src.name, names, splits, info)


def _check_streamable(conditions: dict[str, ConditionSection]) -> None:
    """Stream mode blurs at the input batch by batch: only kinds that treat every image on
    its own give the same pixels that way (motion and glass draw across the whole split)."""
    from kvision.data.conditions import PER_IMAGE

    for name, cond in conditions.items():
        if cond.blur is not None and cond.blur.at == "input" and cond.blur.kind not in PER_IMAGE:
            raise RecipeError(
                f"{cond.blur.kind} blur at the input draws across the whole split, which "
                f'data.store = "stream" never holds; blur it at the source (blur.at = '
                f'"source", per file) or use data.store = "cache".',
                key=f"conditions.{name}.blur.at",
            )


def _split(
    data: DataSection,
    given: dict[str, Split],
    seed: int,
    rng: np.random.Generator,
    names: list[str],
) -> dict[str, Split]:
    keys = (
        ("data.split", "data.split")
        if data.split is not None
        else ("data.val_fraction", "data.test_fraction")
    )
    if not data.use_given_splits or "train" not in given:
        given = {"train": Split.concat(list(given.values()))}
    pooled = set(given) == {"train"}
    if pooled and data.balance.before_split:
        given = {"train": balance.undersample(given["train"], data.balance.per_class, rng)}
    splits = make_splits(given, data.fractions(), seed, names, keys=keys)
    if data.limit_per_class:
        splits = {
            s: balance.limit_per_class(split, data.limit_per_class, rng)
            if s in data.limit_splits
            else split
            for s, split in splits.items()
        }
    method = data.balance.method
    if method == "undersample" and not (pooled and data.balance.before_split):
        splits["train"] = balance.undersample(splits["train"], data.balance.per_class, rng)
    elif method == "oversample":
        splits["train"] = balance.oversample(splits["train"], data.balance.per_class, rng)
    return splits
