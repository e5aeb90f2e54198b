"""Evaluation's share of a run: larger prediction batches, equal weights evaluated once."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import kvision  # noqa: F401  (torch backend before keras)
from kvision.data.feed import Feed
from kvision.runs import RunReader
from kvision.train import evaluate
from kvision.train.console import Console
from kvision.train.runner import run_recipe


def _ctx(shape, batch_size=32):
    fake = SimpleNamespace(
        dataset=SimpleNamespace(image_shape=shape),
        recipe=SimpleNamespace(training=SimpleNamespace(batch_size=batch_size)),
    )
    return Feed.eval_batch_size(fake)


def test_eval_batch_size_follows_the_pixel_budget():
    assert _ctx((64, 64, 1)) == 256
    assert _ctx((32, 32, 3)) == 256  # capped (EVAL_MAX_IMAGES)
    assert _ctx((28, 28, 1)) == 256
    assert _ctx((128, 128, 3)) == 64
    # Large images: the pixel budget (16 at 224 px) but never below the training batch.
    assert _ctx((224, 224, 3)) == 32
    assert _ctx((224, 224, 3), batch_size=256) == 256
    assert _ctx((5,)) == 256  # a regression's feature vector


def test_insight_predicts_in_the_evaluations_batches_unless_the_recipe_says():
    from kvision.insight.hooks import _batch_size
    from kvision.recipe.schema_insight import InsightSection

    small, large = np.zeros((3, 64, 64, 1), np.uint8), np.zeros((3, 224, 224, 3), np.uint8)
    assert _batch_size(InsightSection(), small) == 256  # a sweep variant of 100: one batch
    assert _batch_size(InsightSection(), large) == 16  # the pixel budget, no training floor
    assert _batch_size(InsightSection(batch_size=64), small) == 64


def _model(seed):
    import keras

    from kvision.models import create_model

    keras.utils.set_random_seed(seed)
    return create_model("lenet", input_shape=(12, 12, 1), num_classes=3)


def test_weights_key_tells_equal_weights_from_different_ones():
    a, b, c = _model(1), _model(1), _model(2)
    assert evaluate.weights_key(a) == evaluate.weights_key(b)
    assert evaluate.weights_key(a) != evaluate.weights_key(c)
    b.weights[-1].assign(b.weights[-1] + 1e-6)
    assert evaluate.weights_key(a) != evaluate.weights_key(b)


RECIPE = textwrap.dedent("""\
    [experiment]
    name = "evalcache"
    seed = 5
    [data]
    source = "builtin:fashion7k"
    limit_per_class = 3
    val_fraction = 0.25
    [conditions.clear]
    [models.lenet]
    arch = "lenet"
    [[arms]]
    name = "a"
    stages = [{ name = "train", condition = "clear", epochs = 1 }]
    [[arms]]
    name = "b"
    stages = [{ name = "train", condition = "clear", epochs = 1 }]
    [training]
    batch_size = 8
    [evaluate]
    conditions = ["clear"]
    splits = ["train", "test"]
    [insight]
    enabled = false
    """)


def test_arms_share_their_before_evaluation(tmp_path: Path, monkeypatch):
    """Both arms start from the same weights: one 'before' matrix computed, both recorded."""
    computed = []
    real = evaluate._matrix

    def counting(ctx, model):
        computed.append(evaluate.weights_key(model))
        return real(ctx, model)

    monkeypatch.setattr(evaluate, "_matrix", counting)
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    result = run_recipe(
        str(recipe),
        [],
        runs_dir=str(tmp_path / "runs"),
        console=Console(open(os.devnull, "w"), tty=False),  # noqa: SIM115
    )
    assert result.status == "finished"
    events = RunReader(result.run_dir).evaluations()
    before = [e for e in events if e["checkpoint"] == "before"]
    assert [e["trial"] for e in before] == ["lenet-a", "lenet-b"]
    assert before[0]["matrix"] == before[1]["matrix"] and before[0]["loss"] == before[1]["loss"]
    # 4 evaluations recorded, 3 computed: the second 'before' came from the cache. Trained
    # weights are never looked up (nor hashed), even when, as here, both arms trained alike.
    assert len(events) == 4 and len(computed) == 3
    assert np.isfinite([e["loss"]["clear"]["test"] for e in events]).all()


def test_an_evaluation_subset_is_a_lazy_selection_of_the_split(recipe):
    from kvision.data.dataset import Dataset, Split
    from kvision.data.rows import Rows
    from kvision.recipe.load import load_recipe

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(50) % 2
    dataset = Dataset("d", ["a", "b"], {"train": Split(images, labels)}, info={})
    spec = load_recipe(recipe("tiny", "evaluate.max_images=20"))
    batches, picked = Feed(dataset, spec).eval_batches("clear", "train")
    # The subset is rows of the split, gathered batch by batch, never copied whole.
    assert isinstance(batches.images, Rows) and batches.images.base is images
    assert len(picked) == 20
    first = np.asarray(batches[0][0])
    assert np.array_equal(first, images[batches.images.index[: len(first)]])
