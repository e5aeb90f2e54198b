"""Mix stages (Jang & Tong 2024): each batch draws from several conditions in set proportions,
deterministically per (seed, epoch, batch), so a resumed run sees the same batches."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import kvision  # noqa: F401
from kvision.data.pipeline import make_batches, mix_counts
from kvision.errors import RecipeErrors
from kvision.recipe import load_recipe


@pytest.mark.parametrize(
    ("weights", "n", "expected"),
    [
        ((0.5, 0.5), 32, [16, 16]),
        ((0.3, 0.7), 10, [3, 7]),
        ((1, 1, 1), 32, [11, 11, 10]),
        ((0.25, 0.75), 5, [1, 4]),
        ((2, 1), 7, [5, 2]),
    ],
)
def test_mix_counts_are_the_shares_rounded_to_the_batch(weights, n, expected):
    assert mix_counts(weights, n) == expected


def _sources(n: int = 50):
    """Three 'conditions' of the same n images: image i under condition k has every pixel
    64 k + i, so the source and the image index can be read back from the pixels."""
    index = np.arange(n)
    return [
        np.broadcast_to((k * 64 + index)[:, None, None, None], (n, 2, 2, 1)).astype(np.uint8)
        for k in range(3)
    ], index.astype(np.int64)


def _decode(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    value = images[:, 0, 0, 0].astype(int)
    return value // 64, value % 64  # (source, image index)


def test_batches_hold_the_set_proportions_and_every_image_once():
    sources, labels = _sources()
    seq = make_batches(sources, labels, batch_size=8, seed=3, shuffle=True, mix=[0.5, 0.25, 0.25])
    seen = []
    for b in range(len(seq)):
        images, y = seq[b]
        source, index = _decode(images)
        np.testing.assert_array_equal(index, y)  # labels follow the images
        assert np.bincount(source, minlength=3).tolist() == mix_counts([0.5, 0.25, 0.25], len(y))
        seen += index.tolist()
    assert sorted(seen) == list(range(50))


def test_mix_is_a_function_of_seed_epoch_and_batch_so_resume_sees_the_same_batches():
    sources, labels = _sources()

    def batches(seq, epoch):
        seq.set_epoch(epoch)
        return [seq[b][0] for b in range(len(seq))]

    run = make_batches(sources, labels, batch_size=8, seed=3, shuffle=True, mix=[1, 1, 1])
    through = [batches(run, e) for e in range(3)]
    resumed = make_batches(sources, labels, batch_size=8, seed=3, shuffle=True, mix=[1, 1, 1])
    for a, b in zip(batches(resumed, 2), through[2], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(through[0], through[1], strict=True))
    other = make_batches(sources, labels, batch_size=8, seed=4, shuffle=True, mix=[1, 1, 1])
    assert not all(np.array_equal(a, b) for a, b in zip(batches(other, 0), through[0], strict=True))


def test_validation_mix_stays_fixed_across_epochs():
    sources, labels = _sources()
    val = make_batches(sources[:2], labels, batch_size=8, seed=3, shuffle=False, mix=[1, 1])
    first = [val[b][0] for b in range(len(val))]
    val.set_epoch(5)
    for a, b in zip(first, [val[b][0] for b in range(len(val))], strict=True):
        np.testing.assert_array_equal(a, b)


RECIPE = textwrap.dedent("""\
    [experiment]
    name = "mix"

    [data]
    source = "builtin:fashion7k"
    limit_per_class = 4

    [conditions.clear]

    [conditions.blurred]
    blur = { kind = "gaussian", sigma = 1.5 }

    [conditions.mixed]
    mix = MIX

    [models.lenet]
    arch = "lenet"

    [[arms]]
    name = "mixed"
    stages = [{ name = "train", condition = "mixed", epochs = 1 }]

    [evaluate]
    conditions = EVAL
    """)


def _problems(tmp_path, mix: str, evaluate: str = '["clear", "blurred"]') -> dict[str, str]:
    path = tmp_path / "r.toml"
    path.write_text(RECIPE.replace("MIX", mix).replace("EVAL", evaluate))
    try:
        load_recipe(path)
    except RecipeErrors as errors:
        return {e.key: str(e) for e in errors.errors}
    return {}


def test_mix_recipes_are_validated(tmp_path):
    assert _problems(tmp_path, "{ clear = 0.5, blurred = 0.5 }") == {}
    found = _problems(tmp_path, "{ clear = 0.5, blured = 0.5 }")
    assert "Did you mean: 'blurred'" in found["conditions.mixed.mix.blured"]
    found = _problems(tmp_path, "{ clear = 0.5, blurred = -1.0 }")
    assert "must be positive" in found["conditions.mixed.mix.blurred"]
    found = _problems(tmp_path, "{ clear = 1.0 }")
    assert "at least two" in found["conditions.mixed.mix"]
    found = _problems(tmp_path, "{ clear = 1.0, mixed = 1.0 }")
    assert "itself a mix" in found["conditions.mixed.mix.mixed"]
    found = _problems(tmp_path, "{ clear = 1.0, blurred = 1.0 }", '["mixed"]')
    assert "is a mix" in found["evaluate.conditions[0]"]
