"""Peak memory (RSS) of kvision runs against plain PyTorch scripts holding the same uint8 data.

Three cases, each run as two child processes whose peak resident set size the kernel reports
when they exit (``os.wait4``'s ``ru_maxrss``: every byte the process ever held resident,
interpreter, libraries and data included):

* ``fmnist-lenet``: one LeNet epoch on Fashion-MNIST's 60,000 training images (10% held out
  for validation, the 10,000 test images evaluated), batch 128. kvision runs the recipe
  below; the PyTorch script reads the same IDX files into uint8 arrays and trains the twin
  module of ``kvision.bench.reference`` with a DataLoader and Adam.
* ``import``: ``import kvision, keras`` against ``import torch``, the floor under both cases
  (what the libraries cost before any data or model).
* ``main-job``: ``recipes/naive_vs_expert.toml`` (1,500 / 1,200 / 1,000 images at 64x64,
  clear and blurred, AlexNet/2 and VGG11/8 x naive and expert); the PyTorch script holds the
  same images (clear and Gaussian-blurred uint8 copies of every split), trains the two twin
  modules through the same four trials and evaluates the same matrix. ``--epochs N`` sets
  every stage's epochs on both sides (default: the recipe's own).

    python benchmarks/memory.py                         # all cases
    python benchmarks/memory.py --case fmnist-lenet --markdown memory.md

Fashion-MNIST comes from Debian's package: ``apt-get install -y dataset-fashion-mnist``.
The target of issue 19: kvision's peak within 1.2x of the PyTorch script's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FMNIST = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parent.parent
MAIN_RECIPE = ROOT / "recipes" / "naive_vs_expert.toml"
TARGET = 1.2
CASES = ("import", "fmnist-lenet", "main-job")
FMNIST_RECIPE = """\
[experiment]
name = "fmnist_lenet_memory"
seed = 1
[data]
source = "idx:{root}"
image_size = [28, 28]
val_fraction = 0.1
[conditions.clear]
[models.lenet]
arch = "lenet"
[[arms]]
name = "plain"
stages = [{{ name = "train", condition = "clear", epochs = {epochs} }}]
[training]
optimizer = {{ name = "adam", learning_rate = 1e-3 }}
batch_size = 128
[evaluate]
conditions = ["clear"]
splits = ["test"]
[insight]
enabled = false
"""


# -- measuring ---------------------------------------------------------------------------
def run_child(argv: list[str], cwd: Path, env: dict | None = None):
    """(resource usage, wall seconds) of a child process run to its end, from ``os.wait4``:
    the kernel's own figures for that process (peak RSS, CPU seconds, page faults)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({proc.returncode}):\n"
            f"{stderr.decode(errors='replace')[-2000:]}"
        )
    return usage, time.monotonic() - started


def peak_rss_mib(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of a child process run to its end."""
    usage, seconds = run_child(argv, cwd)
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return kib / 1024, seconds


IMPORTS = {"torch": "import torch", "kvision": "import kvision, keras"}


def _kvision_argv(case: str, epochs: int | None, work: Path) -> list[str]:
    if case == "import":
        return [sys.executable, "-c", IMPORTS["kvision"]]
    argv = [sys.executable, "-m", "kvision", "run"]
    if case == "fmnist-lenet":
        recipe = work / "fmnist_lenet.toml"
        recipe.write_text(FMNIST_RECIPE.format(root=FMNIST, epochs=epochs or 1), "utf-8")
        return [*argv, str(recipe), "--runs-dir", str(work / "runs")]
    sets = []
    if epochs:
        sets = [
            f"arms[0].stages[0].epochs={epochs}",
            f"arms[1].stages[0].epochs={epochs}",
            f"arms[1].stages[1].epochs={epochs}",
        ]
    return [
        *argv,
        str(MAIN_RECIPE),
        "--runs-dir",
        str(work / "runs"),
        *(x for s in sets for x in ("--set", s)),
    ]


def measure(case: str, epochs: int | None) -> dict:
    """Both sides of one case, the PyTorch script first."""
    with tempfile.TemporaryDirectory(prefix="kvision-memory-") as tmp:
        work = Path(tmp)
        torch_argv = [sys.executable, __file__, "--worker", case, "--epochs", str(epochs or 0)]
        if case == "import":
            torch_argv = [sys.executable, "-c", IMPORTS["torch"]]
        torch_mib, torch_s = peak_rss_mib(torch_argv, ROOT)
        # Each side as it ends: on a loaded machine a case can take many minutes.
        print(f"{case}: PyTorch {torch_mib:.0f} MiB ({torch_s:.0f} s)", file=sys.stderr, flush=True)
        kv_mib, kv_s = peak_rss_mib(_kvision_argv(case, epochs, work), ROOT)
        print(f"{case}: kvision {kv_mib:.0f} MiB ({kv_s:.0f} s)", file=sys.stderr, flush=True)
    return {
        "case": case,
        "epochs": epochs,
        "kvision_mib": round(kv_mib, 1),
        "torch_mib": round(torch_mib, 1),
        "ratio": round(kv_mib / torch_mib, 3),
        "kvision_seconds": round(kv_s, 1),
        "torch_seconds": round(torch_s, 1),
        "target": TARGET,
        "meets_target": kv_mib / torch_mib <= TARGET,
    }


def format_table(rows: list[dict], markdown: bool = False) -> str:
    header = (
        "case",
        "kvision peak RSS MiB",
        "PyTorch peak RSS MiB",
        "ratio",
        f"within {TARGET}x",
        "kvision s",
        "PyTorch s",
    )
    cells = [header] + [
        (
            r["case"],
            f"{r['kvision_mib']:.0f}",
            f"{r['torch_mib']:.0f}",
            f"{r['ratio']:.2f}",
            "yes" if r["meets_target"] else "no",
            f"{r['kvision_seconds']:.0f}",
            f"{r['torch_seconds']:.0f}",
        )
        for r in rows
    ]
    if markdown:
        cells.insert(1, tuple("---" if i == 0 else "---:" for i in range(len(header))))
        return "\n".join("| " + " | ".join(row) + " |" for row in cells)
    return "\n".join(
        f"{row[0]:<14}"
        + "".join(f"{c:>22}" for c in row[1:5])
        + "".join(f"{c:>11}" for c in row[5:])
        for row in cells
    )


# -- the plain PyTorch scripts (run in the child process) ----------------------------------
def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array: the format's header, then the bytes."""
    if path.suffix == ".gz":
        with gzip.open(path) as fh:
            raw = fh.read()
    else:
        raw = path.read_bytes()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape).copy()


def _fit(
    model, images: np.ndarray, labels: np.ndarray, batch_size: int, epochs: int, lr: float
) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long())
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model((x.float() / 255 - 0.5) / 0.5), y)
            loss.backward()
            optimizer.step()


def _accuracy(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 128) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            x = torch.from_numpy(images[start : start + batch_size]).unsqueeze(1)
            out = model((x.float() / 255 - 0.5) / 0.5)
            correct += int((out.argmax(1).numpy() == labels[start : start + batch_size]).sum())
    return correct / len(labels)


def _torch_fmnist(epochs: int) -> None:
    import torch

    from kvision.bench.reference import LeNet

    torch.manual_seed(1)
    train_x = _read_idx(FMNIST / "train-images-idx3-ubyte.gz")
    train_y = _read_idx(FMNIST / "train-labels-idx1-ubyte.gz")
    test_x = _read_idx(FMNIST / "t10k-images-idx3-ubyte.gz")
    test_y = _read_idx(FMNIST / "t10k-labels-idx1-ubyte.gz")
    order = np.random.default_rng(1).permutation(len(train_y))
    val, train = order[:6000], order[6000:]
    model = LeNet(1, 28, 10)
    _fit(model, train_x[train], train_y[train], 128, epochs or 1, 1e-3)
    print(
        json.dumps(
            {
                "val": _accuracy(model, train_x[val], train_y[val]),
                "test": _accuracy(model, test_x, test_y),
            }
        )
    )


def _main_job_data() -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The recipe's splits at 64x64, clear and blurred (Gaussian sigma 4), all uint8."""
    import cv2

    raw = np.load(ROOT / "kvision" / "data" / "builtin" / "fashion7k.npz")
    rng = np.random.default_rng(42)
    train_idx, val_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(raw["train_labels"] == c))
        train_idx += list(idx[:150])
        val_idx += list(idx[150:270])
    splits = {
        "train": (raw["train_images"][train_idx], raw["train_labels"][train_idx]),
        "val": (raw["train_images"][val_idx], raw["train_labels"][val_idx]),
        "test": (raw["test_images"], raw["test_labels"]),
    }
    data: dict[str, dict] = {"clear": {}, "blurred": {}}
    for name, (images, labels) in splits.items():
        big = np.stack([cv2.resize(im, (64, 64), interpolation=cv2.INTER_LINEAR) for im in images])
        data["clear"][name] = (big, labels)
        data["blurred"][name] = (
            np.stack([cv2.GaussianBlur(im, (0, 0), 4.0) for im in big]),
            labels,
        )
    return data


def _torch_main_job(epochs: int) -> None:
    import torch

    from kvision.bench.reference import VGG11, AlexNetSeed

    data = _main_job_data()
    builders = {
        "alexnet": lambda: AlexNetSeed(1, 10, downscale=2),
        "vgg": lambda: VGG11(1, 10, width=8, head=4096),
    }
    arms = {
        "naive": [("blurred", epochs or 2)],
        "expert": [("clear", epochs or 2), ("blurred", epochs or 2)],
    }
    results = {}
    for model_name, build in builders.items():
        for arm, stages in arms.items():
            torch.manual_seed(42)
            model = build()
            for condition, stage_epochs in stages:
                _fit(model, *data[condition]["train"], 32, stage_epochs, 3e-4)
                results[f"{model_name}-{arm}"] = {
                    f"{cond}/{split}": _accuracy(model, *data[cond][split][:2])
                    for cond in data
                    for split in ("train", "test")
                }
    print(json.dumps(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case",
        choices=CASES,
        action="append",
        help="run only this case (repeatable; default all)",
    )
    parser.add_argument("--epochs", type=int, help="epochs per stage on both sides")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the table as Markdown to OUT, stamped with the machine, date and command",
    )
    parser.add_argument("--note", help="with --markdown: a note under the table")
    parser.add_argument("--worker", choices=("fmnist-lenet", "main-job"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        (_torch_fmnist if args.worker == "fmnist-lenet" else _torch_main_job)(args.epochs or 0)
        return 0
    cases = args.case or list(CASES)
    if "fmnist-lenet" in cases and not (FMNIST / "train-images-idx3-ubyte.gz").exists():
        parser.exit(
            2,
            f"error: Fashion-MNIST is not in {FMNIST}; install it with "
            "'apt-get install -y dataset-fashion-mnist'.\n",
        )
    rows = []
    for case in cases:
        rows.append(measure(case, args.epochs))
        print(format_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "Peak memory (benchmarks/memory.py)",
            format_table(rows, markdown=True),
            note=args.note,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
