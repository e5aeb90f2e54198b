"""What a checkpoint's weights cost the trainer: ``save_weights`` against a snapshot.

For the main job's two models (AlexNet/2 and VGG11 at 64x64 grey, 10 classes, compiled
with the recipe's Adam after one training step, so Adam's slots are in the file), times on
the trainer's thread: ``model.save_weights`` (what a checkpoint did), and
``kvision.train.weights_file.snapshot`` (what it does now), with the snapshot's write (now on
the checkpoint's commit thread) timed apart. Medians of ``--repeats`` alternating rounds,
in this process; files go to a temporary folder on the disk of ``--dir``.

    python benchmarks/checkpoint_write.py
    python benchmarks/checkpoint_write.py --markdown docs/measured/checkpoint_write.md
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import kvision  # noqa: F401  (selects the torch backend before keras is imported)

TITLE = "A checkpoint's weights on the trainer's thread (benchmarks/checkpoint_write.py)"
#: (label, arch, options): the main job's models (recipes/naive_vs_expert.toml)
CASES = (
    ("alexnet_seed/2-64", "alexnet_seed", {"downscale": 2}),
    ("vgg11_seed/8-64", "vgg11_seed", {"width": 8, "head": 4096}),
)


def _model(arch: str, options: dict):
    import numpy as np

    from kvision.models import create_model
    from kvision.recipe.schema_training import TrainingSection
    from kvision.train.compile import compile_model

    model = create_model(arch, input_shape=(64, 64, 1), num_classes=10, **options)
    compile_model(model, TrainingSection())
    x = np.random.default_rng(0).uniform(0, 255, (32, 64, 64, 1)).astype("float32")
    model.fit(x, np.arange(32) % 10, batch_size=32, epochs=1, verbose=0)
    return model


def _timed(fn, *args):
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def measure(arch: str, options: dict, folder: Path, repeats: int) -> dict:
    """Median seconds of save_weights, snapshot and the snapshot's write; the file's MB."""
    from kvision.train.weights_file import snapshot

    model = _model(arch, options)
    saves, snaps, writes = [], [], []
    for i in range(repeats):
        saves.append(_timed(model.save_weights, str(folder / f"s{i}.weights.h5"))[0])
        seconds, taken = _timed(snapshot, model)
        snaps.append(seconds)
        writes.append(_timed(taken.write, folder / f"w{i}.weights.h5")[0])
        del taken
        for path in folder.iterdir():
            path.unlink()
    model.save_weights(str(folder / "size.weights.h5"))
    size = (folder / "size.weights.h5").stat().st_size / 1e6
    (folder / "size.weights.h5").unlink()
    return {
        "mb": size,
        "save_weights": statistics.median(saves),
        "snapshot": statistics.median(snaps),
        "write": statistics.median(writes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=".", help="where the temporary files go (its disk)")
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the stamp")
    args = parser.parse_args()
    lines = [
        "| model | file MB | `save_weights` s (trainer, before) | snapshot s (trainer, now) "
        "| its write s (commit thread) | trainer's share now |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for label, arch, options in CASES:
            r = measure(arch, options, Path(tmp), args.repeats)
            lines.append(
                f"| {label} | {r['mb']:.0f} | {r['save_weights']:.3f} | {r['snapshot']:.3f} "
                f"| {r['write']:.3f} | {r['snapshot'] / r['save_weights']:.0%} |"
            )
    from kvision.bench.stamp import publish

    publish("\n".join(lines), TITLE, args.markdown, args.note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
