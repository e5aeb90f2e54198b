"""Figure cosmetics a reader relies on: overlapping arms stay visible, stages are marked."""

from __future__ import annotations

import json
from pathlib import Path

import kvision.insight.curves as curves
from kvision.runs import RunReader

# naive_matched repeats naive's first epochs exactly (same init, same data order): identical.
HISTORY = {
    "naive": [("train", 2.0, 0.3), ("train", 1.5, 0.5)],
    "naive_matched": [("train", 2.0, 0.3), ("train", 1.5, 0.5), ("train", 1.2, 0.6)],
    "expert": [("pretrain", 1.8, 0.4), ("train", 1.6, 0.45), ("train", 1.3, 0.55)],
}


def _run(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    (d / "meta.json").write_text("{}")
    (d / "recipe.toml").write_text('[experiment]\nname = "f"\n')
    events = []
    for model in ("alexnet", "vgg"):
        for arm, epochs in HISTORY.items():
            trial = f"{model}-{arm}"
            events.append({"event": "trial_started", "trial": trial, "model": model, "arm": arm})
            within: dict[str, int] = {}
            for i, (stage, loss, acc) in enumerate(epochs, start=1):
                within[stage] = within.get(stage, 0) + 1
                metrics = {"loss": loss, "accuracy": acc, "val_loss": loss, "val_accuracy": acc}
                events.append(
                    {
                        "event": "epoch_end",
                        "trial": trial,
                        "stage": stage,
                        "epoch": within[stage],
                        "global_epoch": i,
                        "metrics": metrics,
                    }
                )
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return d


def test_comparison_separates_overlapping_arms_and_marks_stages(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(curves, "save_figure", lambda fig, path: figures.append(fig) or path)
    curves.plot_comparison(RunReader(_run(tmp_path)), tmp_path / "c.png")
    (fig,) = figures
    axes = fig.axes
    assert len(axes) == 4  # small multiples: one row per model, loss and accuracy
    assert [ax.get_title() for ax in axes[::2]] == [
        "alexnet: validation loss",
        "vgg: validation loss",
    ]
    for ax in axes:
        lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
        naive, matched = lines["naive"], lines["naive_matched"]
        assert naive.get_linestyle() != matched.get_linestyle()
        assert naive.get_marker() != matched.get_marker()
        assert naive.get_markersize() > matched.get_markersize()  # the one below shows round it
        # the expert's pretrain -> train boundary between epochs 1 and 2, in the expert's colour
        marks = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [1.5, 1.5]]
        assert [m.get_color() for m in marks] == [lines["expert"].get_color()]
        assert "expert: train" in [t.get_text() for t in ax.texts]


def _capture(monkeypatch) -> list:
    import kvision.insight._plot as plot

    figures: list = []
    monkeypatch.setattr(plot, "save_figure", lambda fig, path: figures.append(fig) or path)
    return figures


def test_cam_and_activation_grids_carry_a_colour_scale(tmp_path, monkeypatch):
    import numpy as np

    from kvision.insight.activations import plot_stage_means
    from kvision.insight.cam import plot_cams

    figures = _capture(monkeypatch)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 32, 32, 1), dtype=np.uint8)
    panels = {"Grad-CAM": [(rng.random((4, 4)), "coat 0.9") for _ in range(2)]}
    plot_cams(images, panels, ["a", "b"], tmp_path / "cam.png", title="t")
    maps = {"v1": rng.random((2, 8, 8, 128)), "v2": rng.random((2, 4, 4, 256))}
    plot_stage_means(images, maps, ["a", "b"], tmp_path / "act.png", title="t")
    cam, act = figures
    assert [ax.get_ylabel() for ax in cam.axes[1:]] == ["CAM / its peak"]
    assert [ax.get_ylabel() for ax in act.axes[1:]] == ["mean activation / its range"]
    # activation column titles on two short lines, never one long line running into the next
    titles = [t.get_text() for t in act.axes[0].texts if "mean of" in t.get_text()]
    assert titles == ["v1\nmean of 128", "v2\nmean of 256"]


def test_filter_grids_are_not_tiny(tmp_path, monkeypatch):
    import numpy as np

    from kvision.insight.filters import plot_filters

    figures = _capture(monkeypatch)
    kernel = np.random.default_rng(0).normal(size=(11, 11, 3, 16))
    plot_filters({"before": kernel, "after": kernel}, tmp_path / "f.png", title="filters")
    width, height = figures[0].get_size_inches() * figures[0].dpi
    assert height >= 256 and width >= 2 * 256  # a checkpoint's 4x4 mosaic gets 256 px
