"""Input-pipeline speed: kvision's OpenCV blur + augmentation against the reports' PIL way,
and the images/s the pipeline delivers against what AlexNet at 64x64 consumes.

1. Blur + augmentation, images/s, one thread each, same operations on the same images:
   Gaussian blur (sigma 5 at 224x224 RGB, as report 000; sigma 1 at 28x28 gray), then report
   001's dynamic augmentation: RandomResizedCrop (scale 0.5-1, ratio 3/4-4/3, back to the
   input size), horizontal flip p=0.5, rotation up to 45 degrees (bilinear), random grayscale
   p=0.5 (RGB only), and conversion to a float32 array.
   - kvision: ``kvision.data.blur.apply_blur`` + ``kvision.data.augment.Augmenter`` (OpenCV).
   - baseline: ``PIL.ImageFilter.GaussianBlur`` + the same transforms written with PIL the
     way torchvision implements them, one image at a time, then ``ToTensor``-style float32.
2. Pipeline vs model at 64x64 RGB (AlexNet, ``alexnet_seed`` at report 000's half width,
   compiled as a run compiles it): images/s that ``model.fit``
   gets from ``make_batches`` (dynamic augmentation, 2 worker threads) when the model costs
   almost nothing, against images/s AlexNet trains at when its batches cost nothing; and
   AlexNet fed by the real pipeline, to show training does not wait for data.

    python benchmarks/data_throughput.py [--quick] [--markdown docs/measured/data_throughput.md]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageFilter

import kvision  # noqa: F401  (torch backend before keras)
from kvision.data import blur
from kvision.data.augment import Augmenter
from kvision.data.blur import apply_blur
from kvision.recipe.schema_data import AugmentOp

SCALE, RATIO, DEGREES = (0.5, 1.0), (3 / 4, 4 / 3), 45.0


def dynamic_ops(rgb: bool) -> tuple[AugmentOp, ...]:
    """Report 001's dynamic augmentation as kvision ops (output = input size)."""
    ops = [
        AugmentOp(op="random_resized_crop", scale=SCALE, ratio=RATIO),
        AugmentOp(op="hflip", p=0.5),
        AugmentOp(op="rotate", degrees=DEGREES),
    ]
    if rgb:
        ops.append(AugmentOp(op="grayscale", p=0.5))
    return tuple(ops)


def sample_images(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """Smooth random scenes with noise (content barely matters for speed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((n, size, size, channels), np.uint8)
    for i in range(n):
        fx, fy, phase = rng.uniform(1, 6, 3)
        base = np.sin(fx * 6 * xx + phase) * np.cos(fy * 6 * yy) * 80 + 128
        noise = rng.normal(0, 20, (size, size, channels))
        images[i] = np.clip(base[..., None] + noise, 0, 255)
    return images


def kvision_rate(images: np.ndarray, sigma: float | None, threads: int = 1) -> float:
    """Images/s of kvision blur + augmentation + float32 conversion, batches of 64 spread
    over ``threads`` threads as the pipeline's workers do (OpenCV's own threading is left
    as installed). ``sigma=None`` leaves out the blur: kvision blurs a condition once and
    caches it, so this is what each further epoch costs."""
    aug = Augmenter(dynamic_ops(images.shape[3] == 3), images.shape[1:3])
    blur.MAX_THREADS = 1  # one level of threads: the batches'

    def one_batch(i: int) -> None:
        batch = images[i : i + 64]
        blurred = batch if sigma is None else apply_blur(batch, "gaussian", {"sigma": sigma})
        aug.batch(blurred, np.random.default_rng([0, i])).astype(np.float32)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one_batch, range(0, len(images), 64)))
    return len(images) / (time.perf_counter() - start)


def _pil_random_resized_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """torchvision's RandomResizedCrop.get_params + resized_crop, with PIL."""
    w, h = img.size
    for _ in range(10):
        area = h * w * rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            return img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BILINEAR)
    return img.resize((w, h), Image.BILINEAR)


def pil_rate(images: np.ndarray, sigma: float) -> float:
    """Images/s of the reports' approach: PIL GaussianBlur + PIL-written transforms."""
    rng = np.random.default_rng(0)
    rgb = images.shape[3] == 3
    start = time.perf_counter()
    for image in images:
        img = Image.fromarray(image if rgb else image[..., 0])
        img = img.filter(ImageFilter.GaussianBlur(sigma))
        img = _pil_random_resized_crop(img, rng)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = img.rotate(rng.uniform(-DEGREES, DEGREES), Image.BILINEAR)
        if rgb and rng.random() < 0.5:
            img = img.convert("L").convert("RGB")
        arr = np.asarray(img, np.float32) / 255.0  # ToTensor
        arr.transpose(2, 0, 1) if rgb else arr[None]
    return len(images) / (time.perf_counter() - start)


CASES = (
    ("224x224 RGB, sigma 5", 256, 224, 3, 5.0),
    ("224x224 RGB, sigma 2", 256, 224, 3, 2.0),
    ("28x28 gray, sigma 1", 8192, 28, 1, 1.0),
)


def blur_augment_table(quick: bool, threads: int) -> list[tuple[str, float, ...]]:
    """(case, PIL, kvision 1 thread, kvision ``threads`` threads, kvision per cached epoch)
    images/s per case."""
    rows = []
    for name, n, size, channels, sigma in CASES:
        images = sample_images(n // 4 if quick else n, size, channels)
        kvision_rate(images[:64], sigma), pil_rate(images[:8], sigma)  # warm-up
        pil = max(pil_rate(images, sigma) for _ in range(2))
        one = max(kvision_rate(images, sigma) for _ in range(2))
        many = max(kvision_rate(images, sigma, threads) for _ in range(2))
        cached = max(kvision_rate(images, None) for _ in range(2))
        rows.append((name, pil, one, many, cached))
    return rows


def _fit_rate(model, batches, steps: int) -> float:
    """Images/s of one ``model.fit`` epoch of ``steps`` batches (after a warm-up step)."""
    model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    if hasattr(batches, "set_epoch"):
        batches.set_epoch(1)
    start = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * batches.batch_size / (time.perf_counter() - start)


def pipeline_vs_model(quick: bool, threads: int) -> dict[str, float]:
    """Images/s delivered by the pipeline vs consumed by AlexNet at 64x64."""
    import keras

    from kvision.data import make_batches
    from kvision.models import create_model
    from kvision.recipe.schema_training import TrainingSection
    from kvision.train.compile import compile_model

    batch = 64
    pipe_steps, model_steps = (8, 2) if quick else (32, 4)
    images = sample_images(batch * pipe_steps, 64, 3)
    labels = np.arange(len(images)) % 10

    class SameBatch(keras.utils.PyDataset):
        """One ready float32 batch, served for free: the model's own speed."""

        def __init__(self):
            super().__init__()
            self.batch_size = batch
            self.x, self.y = images[:batch].astype(np.float32), labels[:batch]

        def __len__(self):
            return model_steps

        def __getitem__(self, index):
            return self.x, self.y

    def pipeline():
        return make_batches(
            images,
            labels,
            batch_size=batch,
            seed=0,
            shuffle=True,
            augment=dynamic_ops(True),
            workers=threads,
        )

    inputs = keras.Input((64, 64, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    trivial = keras.Model(inputs, keras.layers.Dense(10)(pooled))
    trivial.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # AlexNet as the main job trains it: report 000's half width, compiled as a run compiles.
    alexnet = create_model("alexnet_seed", input_shape=(64, 64, 3), num_classes=10, downscale=2)
    compile_model(alexnet, TrainingSection())
    return {
        "pipeline delivers (trivial model)": _fit_rate(trivial, pipeline(), pipe_steps),
        "AlexNet consumes (free batches)": _fit_rate(alexnet, SameBatch(), model_steps),
        "AlexNet fed by the pipeline": _fit_rate(alexnet, pipeline(), model_steps),
    }


def report(args: argparse.Namespace) -> str:
    """Both comparisons as Markdown tables."""
    out = [
        f"| case | PIL baseline, 1 thread | kvision, 1 thread | kvision, {args.threads} "
        f"threads | kvision, later epochs (blur cached), 1 thread |",
        "|---|---|---|---|---|",
    ]
    for name, pil, *rates in blur_augment_table(args.quick, args.threads):
        cells = " | ".join(f"{r:,.0f} img/s ({r / pil:.1f}x)" for r in rates)
        out.append(f"| {name} | {pil:,.0f} img/s | {cells} |")
    if args.skip_model:
        return "\n".join(out) + "\n"
    rates = pipeline_vs_model(args.quick, args.threads)
    out += ["", f"| 64x64 RGB, batch 64, {args.threads} worker threads | img/s |", "|---|---:|"]
    out += [f"| {name} | {rate:,.0f} |" for name, rate in rates.items()]
    free = rates["AlexNet consumes (free batches)"]
    out += [
        "",
        f"The pipeline delivers {rates['pipeline delivers (trivial model)'] / free:.1f}x "
        f"what AlexNet at 64x64 consumes; fed by the real pipeline AlexNet runs at "
        f"{rates['AlexNet fed by the pipeline'] / free:.0%} of its free-batch speed.",
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    """Run both comparisons and print Markdown tables (and write them with --markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    parser.add_argument("--skip-model", action="store_true", help="only the blur comparison")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="kvision threads in the all-cores column (default: all cores)",
    )
    parser.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the tables to OUT, stamped with machine, date, command",
    )
    parser.add_argument("--note", help="with --markdown: a note under the tables")
    args = parser.parse_args()
    text = report(args)
    print(text, end="")
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "Input pipeline speed (benchmarks/data_throughput.py)",
            text,
            note=args.note,
        )


if __name__ == "__main__":
    main()
