"""Data at the size users have: kvision's memory-mapped store against torchvision's ImageFolder.

Builds a synthetic folder of N JPEGs (two classes, 280-380 px a side, as issue 23's) for each
``--sizes`` value and measures, each side in its own child process:

* kvision, report 000's settings (256 x 256, clear + Gaussian sigma 5 blurred at the stored
  size) and clear only: the first load (cache miss: decode, blur, resize, write the entry),
  its images/s, the entry's size on disk, the second load (cache hit: start-up), and batches
  gathered from the warm map (``make_batches``, 64 a batch, 2 threads, no model) for the
  clear images, the stored blurred view and the same blur computed per batch instead;
* torchvision: ``ImageFolder`` + ``DataLoader(batch 64, 2 workers)``, Resize(256, 256) and
  PILToTensor, one pass (it has no cache: every pass decodes again).

Peak RSS is the kernel's high-water mark (VmHWM) of the process, summed over the process tree
for torchvision's workers; RssAnon (anonymous memory, not reclaimable page cache) is sampled
every 0.1 s. The folder's pictures are 64 distinct JPEGs written under many names (encoding
20,000 would dominate the benchmark); both sides read the same files.

    python benchmarks/data_scale.py --sizes 2000 20000 --torchvision-python /work/tv-venv/bin/python \
        --markdown docs/measured/data_scale.md --note "shared 2-core machine, load ~N"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DISTINCT = 64
BATCH = 64

KVISION_CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.monotonic()
    import kvision
    from kvision.data import load_dataset, make_batches
    from kvision.data.blur import apply_blur
    from kvision.recipe.schema_data import ConditionSection, DataSection
    from kvision.recipe.spec import Context, parse
    root, blurred, batches = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    ctx = Context()
    data = parse(DataSection, {"source": "folder:" + root, "image_size": [256, 256],
                               "val_fraction": 0.2, "test_fraction": 0.1}, ctx, "data")
    conds = {}
    if blurred:
        conds["blurred"] = parse(ConditionSection, {"blur": {"kind": "gaussian", "sigma": 5.0,
                                 "at": "source"}}, ctx, "c")
    t1 = time.monotonic()
    ds = load_dataset(data, seed=0, conditions=conds or None)
    t2 = time.monotonic()
    out = {"load_s": t2 - t1, "startup_s": t2 - t0, "images": sum(ds.info["counts"].values()),
           "hit": ds.info["cache_hit"]}
    def rate(images, labels, blur=False):
        seq = make_batches(images, labels, batch_size=64, seed=0, shuffle=True, workers=2)
        if blur:  # the alternative to a stored view: blur every batch as it is gathered
            get = seq._images
            seq._images = lambda *a: apply_blur(get(*a), "gaussian", {"sigma": 5.0})
        n = min(batches, len(seq))
        seq[0]
        t = time.monotonic()
        for i in range(1, n + 1):
            seq[i % len(seq)]
        return n * 64 / (time.monotonic() - t)
    if batches:
        train = ds.splits["train"]
        out["batch_clear"] = rate(train.images, train.labels)
        if blurred:
            out["batch_stored_blur"] = rate(train.views["blurred"], train.labels)
            out["batch_blur_per_batch"] = rate(train.images, train.labels, blur=True)
    print(json.dumps(out))
""")

TORCHVISION_CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.monotonic()
    import torch
    from torchvision import datasets, transforms
    root = sys.argv[1]
    tf = transforms.Compose([transforms.Resize((256, 256)), transforms.PILToTensor()])
    ds = datasets.ImageFolder(root, transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=2, shuffle=True)
    t1 = time.monotonic()
    n = 0
    for x, y in loader:
        n += len(y)
    t2 = time.monotonic()
    print(json.dumps({"startup_s": t1 - t0, "pass_s": t2 - t1, "images": n}))
""")


def make_folder(root: Path, n: int, seed: int = 0) -> None:
    """``n`` JPEGs in cat/ and dog/, 280-380 px a side, about 26 KB each."""
    import cv2

    rng = np.random.default_rng(seed)
    pictures = []
    for k in range(DISTINCT):
        h, w = rng.integers(280, 381, 2)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = 128 + 60 * np.sin(xx / (9 + k) + k) * np.cos(yy / (13 + k))
        image = np.clip(base[..., None] + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        pictures.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / ("cat", "dog")[i % 2] / f"{i:06d}.jpg").write_bytes(pictures[i % DISTINCT])


def measure(command: list[str], env: dict, output: bool = True, stderr: Path | None = None) -> dict:
    """Run ``command``; its JSON output (or, without ``output``, its exit code) plus peak RSS
    (tree) and peak RssAnon (tree), MiB. ``stderr``: a file for the child's stderr."""
    import psutil

    sink = subprocess.PIPE if output else subprocess.DEVNULL
    err = open(stderr, "wb") if stderr else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, stdout=sink, stderr=err, env=env)
    top = psutil.Process(proc.pid)
    peak_rss = peak_anon = 0
    while proc.poll() is None:
        rss = anon = 0
        try:
            for p in [top, *top.children(recursive=True)]:
                status = _status(p.pid)
                rss += status.get("VmHWM", 0)
                anon += status.get("RssAnon", 0)
        except psutil.Error:
            pass
        peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
        time.sleep(0.1)
    if stderr:
        err.close()
    if not output:
        out = {"returncode": proc.returncode}
    else:
        out = json.loads(proc.stdout.read().decode().strip().splitlines()[-1])
    out.update(peak_rss_mib=peak_rss / 1024, peak_anon_mib=peak_anon / 1024)
    return out


def _status(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in lines) if "kB" in v}


def du(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def one_size(n: int, args: argparse.Namespace, work: Path) -> list[str]:
    """Markdown rows for ``n`` images."""
    folder = work / f"folder-{n}"
    make_folder(folder, n)
    rows = []
    script = work / "kv.py"
    script.write_text(KVISION_CHILD)
    for blurred in [v == "blurred" for v in args.variants]:
        cache = work / f"cache-{n}-{int(blurred)}"
        env = {**os.environ, "KVISION_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, str(script), str(folder)]
        first = measure([*cmd, "1" if blurred else "0", "0"], env)
        second = measure([*cmd, "1" if blurred else "0", str(args.batches)], env)
        what = "clear + blurred" if blurred else "clear"
        rows.append(
            f"| {n:,} | kvision ({what}) | {first['load_s']:.1f} s | "
            f"{first['images'] / first['load_s']:.0f} | {du(cache) / 2**20:,.0f} MiB | "
            f"{second['startup_s']:.1f} s (load {second['load_s']:.2f} s) | "
            f"{max(first['peak_rss_mib'], second['peak_rss_mib']):,.0f} MiB | "
            f"{max(first['peak_anon_mib'], second['peak_anon_mib']):,.0f} MiB | "
            f"{_batch_rates(second)} |"
        )
        shutil.rmtree(cache, ignore_errors=True)
    if args.torchvision_python:
        tv_script = work / "tv.py"
        tv_script.write_text(TORCHVISION_CHILD)
        tv = measure([args.torchvision_python, str(tv_script), str(folder)], dict(os.environ))
        rate = tv["images"] / tv["pass_s"]
        rows.append(
            f"| {n:,} | torchvision ImageFolder + DataLoader(2 workers) | {tv['pass_s']:.1f} s "
            f"(one pass) | {rate:.0f} | none | {tv['startup_s']:.1f} s | "
            f"{tv['peak_rss_mib']:,.0f} MiB (tree) | {tv['peak_anon_mib']:,.0f} MiB (tree) | "
            f"{rate:.0f} (decodes every pass) |"
        )
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def _batch_rates(result: dict) -> str:
    parts = [f"clear {result['batch_clear']:,.0f}"]
    if "batch_stored_blur" in result:
        parts.append(f"stored blur {result['batch_stored_blur']:,.0f}")
        parts.append(f"blur per batch {result['batch_blur_per_batch']:,.0f}")
    return ", ".join(parts)


def report(args: argparse.Namespace) -> str:
    """The table for every size (written with --markdown after each size, so a long run
    that is stopped keeps the sizes it finished)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="kvision-data-scale-") as tmp:
        for n in args.sizes:
            rows += one_size(n, args, Path(tmp))
            if args.markdown:
                _write(args, _table(rows))
    return _table(rows)


def _table(rows: list[str]) -> str:
    load = os.getloadavg()
    head = (
        "| images | loader | first run (build) | img/s | cache size | second-run start-up "
        "| peak RSS | peak RssAnon | batch img/s from a warm map (no model) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    tail = (
        f"\nLoad average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(1 / 5 / 15 min) on {os.cpu_count()} cores.\n"
    )
    return head + "\n".join(rows) + "\n" + tail


def main() -> None:
    """Run every size and print the Markdown table (and write it with --markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--batches", type=int, default=100, help="batches timed per view")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=("blurred", "clear"),
        default=["blurred", "clear"],
        help="kvision loads measured: clear + blurred (report 000) and/or clear only",
    )
    parser.add_argument("--torchvision-python", help="a Python with torch and torchvision")
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the table")
    args = parser.parse_args()
    print(report(args), end="")


def _write(args: argparse.Namespace, text: str) -> None:
    from kvision.bench.stamp import write_markdown

    write_markdown(args.markdown, "Data at scale (benchmarks/data_scale.py)", text, note=args.note)


if __name__ == "__main__":
    main()
