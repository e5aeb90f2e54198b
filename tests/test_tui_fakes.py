"""Fake run directories for the TUI tests (fixed times and values, so snapshots are stable).

The helpers write events.jsonl lines as docs/ARCHITECTURE.md specifies; the tests in this
file check that the fakes read back through kvision.runs the way a real run would.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from kvision.runs import RunReader, is_run_dir

T0 = "2026-01-01T12:00:00.000+00:00"


def _time(seconds: int) -> str:
    h, m, s = 12 + seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"2026-01-01T{h:02d}:{m:02d}:{s:02d}.000+00:00"


def _event(kind: str, t: int, trial: str | None = None, stage: str | None = None, **kw) -> dict:
    return {"event": kind, "time": _time(t), "trial": trial, "stage": stage, **kw}


def fake_events(
    trials: int = 2,
    epochs: tuple[int, ...] = (3, 3),
    finish: str = "finished",
    recipe: str = "demo",
) -> list[dict]:
    """Events of a run: ``trials`` trials, stages with ``epochs`` epochs each."""
    names = [f"lenet-arm{i}" for i in range(trials)]
    stages = [
        {"name": f"stage{j}", "condition": "clear" if j == 0 else "blurred", "epochs": n}
        for j, n in enumerate(epochs)
    ]
    out = [
        _event(
            "run_started",
            0,
            run="fake",
            recipe_name=recipe,
            trials=[
                {"trial": n, "model": "lenet", "arm": f"arm{i}", "stages": stages}
                for i, n in enumerate(names)
            ],
        ),
        _event(
            "data_loaded",
            1,
            dataset="fashion7k",
            class_names=["a", "b"],
            counts={"train": 80, "val": 20, "test": 20},
            skipped=[{"path": "bad.png", "reason": "cannot decode"}],
        ),
    ]
    t = 2
    for i, name in enumerate(names):
        out.append(_event("trial_started", t, name, model="lenet", arm=f"arm{i}", params=1234))
        out.append(
            _event(
                "evaluation",
                t,
                name,
                checkpoint="before",
                matrix={
                    "clear": {"train": 0.5, "test": 0.5},
                    "blurred": {"train": 0.5, "test": 0.5},
                },
                loss={"clear": {"train": 0.69, "test": 0.69}},
            )
        )
        g = 0
        for j, stage in enumerate(stages):
            out.append(
                _event(
                    "stage_started",
                    t,
                    name,
                    stage["name"],
                    stage_index=j,
                    condition=stage["condition"],
                    epochs=stage["epochs"],
                )
            )
            for e in range(1, stage["epochs"] + 1):
                g += 1
                t += 1
                loss = 1.0 / (1 + 0.05 * g) + 0.02 * math.sin(g) + 0.1 * i
                out.append(_event("progress", t, name, stage["name"], epoch=e, step=5, steps=10))
                out.append(
                    _event(
                        "epoch_end",
                        t,
                        name,
                        stage["name"],
                        epoch=e,
                        global_epoch=g,
                        metrics={
                            "loss": round(loss, 4),
                            "accuracy": round(1 - loss / 2, 4),
                            "val_loss": round(loss * 1.1, 4),
                            "val_accuracy": round(0.95 - loss / 2, 4),
                            "lr": 0.001,
                        },
                        seconds=1.0,
                    )
                )
            out.append(
                _event(
                    "stage_ended",
                    t,
                    name,
                    stage["name"],
                    epochs_run=stage["epochs"],
                    stopped_early=False,
                )
            )
            out.append(
                _event(
                    "evaluation",
                    t,
                    name,
                    checkpoint=f"after_{stage['name']}",
                    matrix={
                        "clear": {"train": 0.9 - 0.1 * i, "test": 0.8 - 0.1 * i},
                        "blurred": {"train": 0.7, "test": 0.6},
                    },
                    loss={"clear": {"train": 0.3, "test": 0.4}},
                )
            )
        out.append(_event("trial_finished", t, name, seconds=float(g)))
    if finish == "finished":
        out.append(_event("run_finished", t + 1, seconds=float(t + 1)))
    elif finish == "failed":
        out.append(
            _event("run_failed", t + 1, error="CUDA out of memory", traceback_file="run.log")
        )
    return out


def write_run(
    runs_dir: Path,
    name: str = "20260101-120000-demo",
    *,
    pid: int | None = None,
    partial_line: bool = False,
    images: bool = True,
    **kw,
) -> Path:
    """A run directory with fake events (optionally a torn last line) and a few images."""
    run = runs_dir / name
    run.mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps({"pid": pid, "host": None, "seed": 1}))
    (run / "recipe.toml").write_text('[experiment]\nname = "demo"\n')
    text = "".join(json.dumps(e) + "\n" for e in fake_events(**kw))
    if partial_line:
        text += '{"event": "epoch_end", "time": "2026-01-01T13:'
    (run / "events.jsonl").write_text(text)
    if images:
        write_images(run)
    return run


def write_images(run: Path) -> None:
    """Two filter images, one curve, and a corrupt confusion PNG."""
    from PIL import Image

    for i in range(2):
        img = Image.new("RGB", (16, 8))
        img.putdata([((x * 16 + 40 * i) % 256, y * 30, 128) for y in range(8) for x in range(16)])
        (run / "images" / "filters").mkdir(parents=True, exist_ok=True)
        img.save(run / "images" / "filters" / f"conv{i + 1}.png")
    (run / "images" / "curves").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(run / "images" / "curves" / "loss.png")
    (run / "images" / "confusion").mkdir(parents=True)
    (run / "images" / "confusion" / "matrix.png").write_bytes(b"\x89PNG not really")


def test_fake_run_reads_back_like_a_real_one(tmp_path: Path) -> None:
    run = write_run(tmp_path, partial_line=True)
    reader = RunReader(run)
    assert is_run_dir(run)
    assert reader.status() == "finished"
    assert len(reader.epochs()) == 2 * 6
    assert reader.trials() == ["lenet-arm0", "lenet-arm1"]


def screen_lines(app) -> list[str]:
    """The terminal's text, one string per row, from the app's SVG screenshot (what a user
    sees, after layout and cropping)."""
    import html
    import re

    rows: dict[int, dict[int, str]] = {}
    pattern = (
        r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
        r'clip-path="url\(#[\w-]*?line-(\d+)\)">(.*?)</text>'
    )
    for m in re.finditer(pattern, app.export_screenshot(), re.S):
        text = html.unescape(m.group(3)).replace("\xa0", " ").rstrip("\n")
        rows.setdefault(int(m.group(2)), {})[round(float(m.group(1)) / 12.2)] = text
    lines = []
    for row in range(max(rows, default=-1) + 1):
        line = ""
        for col, text in sorted(rows.get(row, {}).items()):
            line = line.ljust(col) + text
        lines.append(line)
    return lines
