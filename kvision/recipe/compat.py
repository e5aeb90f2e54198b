"""Whether a recipe's data fits its models and the machine, decided from tables alone: the
model catalogue's smallest input, the built-in datasets' shapes and counts, the memory the
system says is available. No Keras, no data read, so ``kvision validate`` and the first
second of ``kvision run`` refuse the same recipes before any run directory exists.

Sources whose size is only known once read (folders, tfds) are checked again by the loader
and by the model factory; the messages are the same.
"""

from __future__ import annotations

import os
from typing import Any

#: The built-in datasets: (height, width, channels) and images per split (the .npz files;
#: tests/test_hostile_input.py checks these against the files).
BUILTIN_SHAPES: dict[str, tuple[tuple[int, int, int], dict[str, int], int]] = {
    "fashion7k": ((28, 28, 1), {"train": 6000, "test": 1000}, 10),
}


def input_size(recipe: Any) -> tuple[int, int] | None:
    """(height, width) every model will see, when known without reading the data."""
    data = recipe.data
    if data.image_size:
        return tuple(data.image_size)
    prefix, _, rest = data.source.partition(":")
    if prefix == "builtin" and rest in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[rest][0][:2]
    return None


def too_small(arch: str, size: tuple[int, int]) -> str | None:
    """The model factory's refusal of an input smaller than ``arch`` accepts, or None."""
    from kvision.models.catalog import get_entry

    entry = get_entry(arch)
    if len(entry.default_input) != 3 or min(size) >= entry.min_input:
        return None
    return (
        f"Input {size[0]}x{size[1]} is too small for model '{entry.name}': its pooling "
        f"needs at least {entry.min_input}x{entry.min_input} pixels. Use a larger "
        f"data.image_size (the model's usual input is "
        f"{entry.default_input[0]}x{entry.default_input[1]})."
    )


def check_loaded(recipe: Any, image_shape: tuple[int, ...]) -> None:
    """After the data is read (a folder's images, whose size the recipe did not say): the
    same refusal as :func:`too_small`, still before the run directory is made."""
    from kvision.errors import RecipeError

    if recipe.data.regression or len(image_shape) != 3:
        return
    for name, model in recipe.models.items():
        if problem := too_small(model.arch, tuple(image_shape[:2])):
            raise RecipeError(f"{problem} (models.{name})", key="data.image_size")


def builtin_images(recipe: Any) -> int | None:
    """How many images a built-in source decodes and resizes; None if unknown. All of them:
    the loader resizes every image of the source before ``limit_per_class`` picks some."""
    prefix, _, rest = recipe.data.source.partition(":")
    if prefix != "builtin" or rest not in BUILTIN_SHAPES:
        return None
    return sum(BUILTIN_SHAPES[rest][1].values())


def memory_problem(recipe: Any) -> str | None:
    """A refusal when the decoded images alone cannot fit in the memory available now."""
    size, count = input_size(recipe), builtin_images(recipe)
    if size is None or recipe.data.regression:
        return None
    native = BUILTIN_SHAPES.get(recipe.data.source.partition(":")[2], ((0, 0, 3),))[0][2]
    channels = recipe.data.channels or native
    per_image = size[0] * size[1] * channels  # uint8, before any float copy for training
    need = per_image * (count or 1)
    have = available_memory()
    if have is None or need <= have:
        return None
    what = (
        f"the {count:,} images of {recipe.data.source} (all are resized before "
        "data.limit_per_class picks some)"
        if count
        else "one image"
    )
    return (
        f"data.image_size {size[0]}x{size[1]} cannot fit: {what} at {size[0]}x{size[1]}x"
        f"{channels} need {_bytes(need)} as uint8 alone (training needs more), but this "
        f"machine has {_bytes(have)} of memory available. Use a smaller data.image_size."
    )


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.2f} {unit}"
        n /= 1024
    return f"{n:,.2f} PiB"
