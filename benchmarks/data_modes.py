"""The two data stores side by side: bytes per image on disk and in the process, and batch rate.

Builds issue 23's synthetic folder (JPEGs of 280-380 px, two classes; data_scale.make_folder)
at each ``--sizes`` value and loads it at report 000's settings (256 x 256 RGB, clear +
Gaussian sigma 5 blurred at the stored size) once per store, each in its own child process:

* ``cache``: the first load builds the memory-mapped entry; a second process maps it and
  gathers batches (64 a batch, 2 loader threads, no model) of the clear images and of the
  stored blurred view;
* ``stream``: nothing is built; the batches are decoded, blurred and resized as they are
  gathered, clear and blurred alike.

Reported per store and size: disk bytes per image (the cache folder's size after the run,
divided by the images), peak RssAnon of the process (anonymous memory: what does not go back
to the kernel under pressure), peak RSS (with the mapped pages), and batch images/s. From the
largest size's bytes per image it derives what each store serves on a 16 GB and a 64 GB
machine (RAM less 2 GiB for the run kept as page cache; the disk budget is the cache's default,
64 GiB, or the free disk). The rates come from a shared 2-core machine: compare within a run.

    python benchmarks/data_modes.py --sizes 200 800 --markdown docs/measured/data_modes.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_scale import ROOT, du, make_folder, measure  # noqa: E402 - the sibling benchmark

CHILD = textwrap.dedent("""
    import json, sys, time
    import kvision
    from kvision.data import load_dataset, make_batches
    from kvision.data.conditions import condition_view
    from kvision.recipe.schema_data import ConditionSection, DataSection
    from kvision.recipe.spec import Context, parse
    root, store, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = Context()
    data = parse(DataSection, {"source": "folder:" + root, "image_size": [256, 256],
                               "val_fraction": 0.2, "store": store}, ctx, "data")
    blurred = parse(ConditionSection, {"blur": {"kind": "gaussian", "sigma": 5.0,
                    "at": "source"}}, ctx, "c")
    assert not ctx.errors, ctx.errors
    t = time.monotonic()
    ds = load_dataset(data, seed=0, conditions={"blurred": blurred})
    out = {"load_s": time.monotonic() - t, "images": sum(ds.info["counts"].values())}
    def rate(images, labels):
        seq = make_batches(images, labels, batch_size=64, seed=0, shuffle=True, workers=2)
        n = min(batches, len(seq))
        t = time.monotonic()
        for i in range(n):
            seq[i]
        return n * 64 / (time.monotonic() - t)
    if batches:
        train = ds.splits["train"]
        out["clear"] = rate(train.images, train.labels)
        out["blurred"] = rate(condition_view(ds, "train", "blurred", blurred), train.labels)
    print(json.dumps(out))
""")


def one_size(n: int, args: argparse.Namespace, work: Path) -> tuple[list[str], dict]:
    """Markdown rows for ``n`` images, and the cache's bytes per image."""
    folder = work / f"folder-{n}"
    make_folder(folder, n)
    script = work / "modes.py"
    script.write_text(CHILD)
    rows, per_image = [], {}
    for store in ("cache", "stream"):
        cache = work / f"cache-{n}-{store}"
        env = {**os.environ, "KVISION_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, str(script), str(folder), store]
        first = measure([*cmd, "0" if store == "cache" else str(args.batches)], env)
        runs = [first, measure([*cmd, str(args.batches)], env)] if store == "cache" else [first]
        timed = runs[-1]
        disk = du(cache) if cache.exists() else 0
        per_image[store] = disk / timed["images"]
        rows.append(
            f"| {n:,} | {store} | {per_image[store]:,.0f} B | "
            f"{max(r['peak_anon_mib'] for r in runs):,.0f} MiB | "
            f"{max(r['peak_rss_mib'] for r in runs):,.0f} MiB | {first['load_s']:.1f} s | "
            f"clear {timed['clear']:,.0f}, blurred {timed['blurred']:,.0f} |"
        )
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return rows, per_image


def serves(per_image: float) -> str:
    """Images a cache of ``per_image`` bytes each keeps warm / on a 64 GiB budget."""
    rows = []
    for ram in (16, 64):
        warm = (ram - 2) * 10**9 / per_image
        rows.append(
            f"| {ram} GB | cache | {warm:,.0f} images warm in the page cache; up to "
            f"{64 * 2**30 / per_image:,.0f} on the default 64 GiB cache budget (disk-bound "
            f"reads beyond the warm size) |"
        )
        rows.append(
            f"| {ram} GB | stream | any number: no disk, memory flat; every epoch decodes "
            f"again at the batch rate above |"
        )
    return "\n".join(rows)


def report(args: argparse.Namespace) -> str:
    """Both tables (written with --markdown after each size)."""
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kvision-data-modes-") as tmp:
        for n in args.sizes:
            more, per_image = one_size(n, args, Path(tmp))
            rows += more
            text = _tables(rows, per_image["cache"])
            if args.markdown:
                _write(args, text)
    return text


def _tables(rows: list[str], per_image: float) -> str:
    load = os.getloadavg()
    head = (
        "| images | store | disk bytes / image | peak RssAnon | peak RSS | first load "
        "| batch img/s (64 a batch, 2 threads, no model) |\n|---|---|---|---|---|---|---|\n"
    )
    derived = (
        f"\nWhat each store serves at report 000's settings ({per_image:,.0f} B per image in "
        f"the cache, from the largest size above):\n\n| RAM | store | serves |\n|---|---|---|\n"
    )
    tail = (
        f"\nLoad average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(1 / 5 / 15 min) on {os.cpu_count()} cores.\n"
    )
    return head + "\n".join(rows) + "\n" + derived + serves(per_image) + "\n" + tail


def main() -> None:
    """Run every size and print the Markdown tables (and write them with --markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--batches", type=int, default=6, help="batches timed per view")
    parser.add_argument("--markdown", metavar="OUT", help="also write the tables, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the tables")
    args = parser.parse_args()
    print(report(args), end="")


def _write(args: argparse.Namespace, text: str) -> None:
    from kvision.bench.stamp import write_markdown

    write_markdown(args.markdown, "Data stores (benchmarks/data_modes.py)", text, note=args.note)


if __name__ == "__main__":
    main()
