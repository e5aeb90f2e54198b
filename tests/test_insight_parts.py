"""Insight building blocks: filter scaling, samples, metrics, robustness summaries, retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from kvision.insight.classification import classification_summary, markdown_table
from kvision.insight.filters import filter_mosaic, filter_tiles
from kvision.insight.hooks import pick_samples
from kvision.insight.retrieval import FeatureIndex, precision_at_k
from kvision.insight.robustness import stratified_subset, summarise


def test_rgb_filters_are_scaled_by_their_own_max_abs_weight():
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[0, 0, 0, 0], kernel[1, 1, 2, 0] = 4.0, -2.0  # filter 0: max |w| = 4
    kernel[0, 1, 1, 1] = 0.5  # filter 1: max |w| = 0.5
    tiles = filter_tiles(kernel)
    assert tiles.shape == (2, 2, 2, 3)
    assert tiles[0, 0, 0, 0] == 1.0 and tiles[0, 1, 1, 2] == 0.25 and tiles[0, 1, 0, 0] == 0.5
    assert tiles[1, 0, 1, 1] == 1.0  # each filter uses its own scale


def test_gray_filters_repeat_the_channel_mean_and_grid_is_near_square():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 1, 5)).astype(np.float32)
    tiles = filter_tiles(kernel, max_filters=5)
    assert np.array_equal(tiles[..., 0], tiles[..., 2])
    assert filter_mosaic(tiles).shape == (2 * 4 - 1, 3 * 4 - 1, 3)  # 2 rows x 3 cols, 1 px gaps


def test_pick_samples_takes_per_class_images_in_class_order():
    labels = np.array([2, 0, 1, 0, 2, 1, 1])
    picked = pick_samples(labels, per_class=2, seed=1)
    assert list(labels[picked]) == [0, 0, 1, 1, 2, 2]
    assert len(set(picked)) == 6
    assert np.array_equal(picked, pick_samples(labels, per_class=2, seed=1))
    few = np.array([0, 1, 1])
    assert list(few[pick_samples(few, per_class=3)]) == [0, 1, 1]  # a class with fewer: all


def test_classification_summary_matches_hand_counts():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 1])
    s = classification_summary(y_true, y_pred, ["cat", "dog", "fox"])
    assert s["accuracy"] == pytest.approx(4 / 6)
    # precision: cat 2/2, dog 2/4, fox 0 (never predicted) -> macro 0.5
    assert s["macro_precision"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert s["macro_recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert s["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert s["per_class"]["dog"]["support"] == 2
    table = markdown_table(s)
    assert "| fox | 0.000 | 0.000 | 0.000 | 1 |" in table and "accuracy **0.6667**" in table


def test_macro_averages_skip_classes_absent_from_truth_and_predictions():
    # Four classes; "owl" is neither true nor predicted, "fox" is true but never predicted.
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 1])
    s = classification_summary(y_true, y_pred, ["cat", "dog", "fox", "owl"])
    # by hand over cat, dog, fox: precision 1, 2/4, 0; recall 1/2, 1, 0
    assert s["macro_precision"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert s["macro_recall"] == pytest.approx((0.5 + 1 + 0) / 3)
    f1 = [2 * 1 * 0.5 / 1.5, 2 * 0.5 * 1 / 1.5, 0.0]
    assert s["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert s["absent_classes"] == ["owl"]
    assert "absent from both (not averaged): owl" in markdown_table(s)
    assert "not averaged" not in markdown_table(
        classification_summary(y_true, y_pred, ["cat", "dog", "fox"])
    )


def test_robustness_summary_normalises_errors_by_the_baseline():
    curves = {
        "alexnet-naive": {
            "sigma": {"0": 0.9, "2": 0.7},
            "severity": {"gaussian": {"1": 0.8, "2": 0.6}, "motion": {"1": 0.9, "2": 0.7}},
        },
        "alexnet-expert": {
            "sigma": {"0": 0.9, "2": 0.8},
            "severity": {"gaussian": {"1": 0.9, "2": 0.8}, "motion": {"1": 0.9, "2": 0.8}},
        },
    }
    s = summarise(curves, "alexnet-naive")
    assert s["alexnet-naive"]["mce"] == pytest.approx(1.0)
    # expert errors: gaussian 0.1+0.2 vs 0.2+0.4 -> 0.5; motion 0.1+0.2 vs 0.1+0.3 -> 0.75
    assert s["alexnet-expert"]["ce"] == pytest.approx({"gaussian": 0.5, "motion": 0.75})
    assert s["alexnet-expert"]["mce"] == pytest.approx(0.625)
    assert s["alexnet-expert"]["mean_accuracy"] == pytest.approx(0.85)
    assert s["alexnet-naive"]["mean_sigma_accuracy"] == pytest.approx(0.7)  # sigma 0 excluded


def test_stratified_subset_keeps_class_proportions():
    labels = np.array([0] * 80 + [1] * 20)
    keep = stratified_subset(labels, 10, seed=0)
    assert len(keep) == 10 and np.bincount(labels[keep]).tolist() == [8, 2]
    assert len(stratified_subset(labels, 500)) == 100


def test_retrieval_ranks_by_distance_and_scores_precision_at_k():
    feats = np.array([[1, 0], [0.96, 0.28], [0, 1], [0.28, 0.96]], np.float32)
    labels = np.array([0, 0, 1, 1])
    index = FeatureIndex(feats, labels)
    (hit,) = index.search(np.array([[0.9487, 0.3162]], np.float32), k=4)
    assert hit.indices.tolist() == [1, 0, 3, 2]
    assert np.all(np.diff(hit.distances) >= 0)
    (near,) = index.search(np.array([[1.0, 0.0]], np.float32), k=4, threshold=0.5)
    assert near.indices.tolist() == [0, 1]
    assert precision_at_k(index, feats, labels, k=1, exclude_self=True) == 1.0
    assert precision_at_k(index, feats, labels, k=2, exclude_self=True) == pytest.approx(0.5)


def test_insight_recipe_section_checks_names_with_key_paths():
    from kvision.recipe.schema_insight import InsightSection
    from kvision.recipe.spec import Context, parse

    ctx = Context()
    parse(InsightSection, {"checkpoints": ["before", "aftr_train"]}, ctx, "insight")
    assert [str(e) for e in ctx.errors] == [
        "key 'insight.checkpoints[1]': 'aftr_train' is not a checkpoint name: use 'before' or "
        "'after_<stage>' (e.g. 'after_pretrain')."
    ]
    ctx = Context()
    parse(InsightSection, {"cam": {"method": "gradcam+"}}, ctx, "insight")
    assert "key 'insight.cam.method': 'gradcam+' is not allowed. Did you mean: 'gradcam++'?" in str(
        ctx.errors[0]
    )


def test_trial_history_marks_stage_boundaries_and_keeps_the_latest_epoch(tmp_path):
    from kvision.insight.curves import trial_history
    from kvision.runs import RunReader, RunWriter

    w = RunWriter(tmp_path)
    for stage, epoch, g, loss in [
        ("pretrain", 1, 1, 0.9),
        ("pretrain", 2, 2, 0.8),
        ("train", 1, 3, 0.7),
        ("train", 1, 3, 0.6),  # resumed
        ("train", 2, 4, 0.5),
    ]:
        w.event(
            "epoch_end",
            trial="a-expert",
            stage=stage,
            epoch=epoch,
            global_epoch=g,
            metrics={"loss": loss},
            seconds=1,
        )
    w.event(
        "epoch_end",
        trial="a-naive",
        stage="train",
        epoch=1,
        global_epoch=1,
        metrics={"loss": 2.0},
        seconds=1,
    )
    w.close()
    hist = trial_history(RunReader(tmp_path), "a-expert")
    assert hist.epochs == [1, 2, 3, 4]
    assert hist.metrics["loss"] == [0.9, 0.8, 0.6, 0.5]
    assert hist.boundaries == [(2.5, "train")] and hist.first_stage == "pretrain"
