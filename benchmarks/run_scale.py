"""Report 000's run at the user's size: a whole ``kvision run`` at N images, under a memory cap.

For each ``--sizes`` value, builds the synthetic folder of ``data_scale.py`` (two classes of
JPEGs, 280-380 px a side) and runs ``recipes/naive_vs_expert_full.toml`` on it as report 000
set it up (256 x 256 RGB, clear + Gaussian sigma 5 blurred at the source resolution, the
naive / expert / naive_matched arms) with a small model and one epoch per stage, so the data,
not the model, is what grows. Each run starts with an empty cache (the first run a user makes)
inside a memory cgroup v1 capped at ``--cap`` (the development and CI machines let root create
one; without it the run is measured uncapped and the table says so).

Per run: exit code, wall time, peak anonymous memory (RssAnon of the process tree, sampled
every 0.1 s: the memory the kernel cannot reclaim), the cgroup's high-water mark (anonymous
plus page cache, which the kernel reclaims under the cap), how often the cap was hit, and the
cache entry's size on disk. Memory flat in N means the RssAnon column stays put while N grows.

    python benchmarks/run_scale.py --sizes 2000 20000 --cap 4G \
        --markdown docs/measured/run_scale.md --note "2-core machine, load ~N"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_scale import ROOT, du, make_folder, measure  # noqa: E402 - the sibling benchmark

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def recipe_text(folder: Path, args: argparse.Namespace) -> str:
    """Report 000's full-size recipe pointed at ``folder``, small model, one epoch a stage."""
    import tomli_w

    recipe = tomllib.loads((ROOT / "recipes/naive_vs_expert_full.toml").read_text())
    recipe["data"]["source"] = f"folder:{folder}"
    recipe["models"] = {"small": {"arch": "alexnet_seed", "downscale": args.downscale}}
    for arm in recipe["arms"]:
        for stage in arm["stages"]:
            stage["epochs"] = 1
    # The budget-matched control keeps its meaning: as many epochs in all as expert.
    recipe["arms"][2]["stages"][0]["epochs"] = 2
    recipe["training"]["workers"] = 2
    recipe["evaluate"]["max_images"] = args.eval_images
    return tomli_w.dumps(recipe)


def _cgroup(cap: int) -> Path | None:
    group = CGROUP_ROOT / f"kvision-run-scale-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(cap))
    except OSError:
        if group.exists():
            group.rmdir()
        return None
    return group


def run_once(n: int, args: argparse.Namespace, work: Path) -> str:
    """One Markdown row: a first run (empty cache) of the recipe at ``n`` images."""
    folder = work / f"folder-{n}"
    make_folder(folder, n)
    recipe = work / f"run-{n}.toml"
    recipe.write_text(recipe_text(folder, args))
    cache, run_dir = work / f"cache-{n}", work / f"run-{n}"
    group = _cgroup(args.cap) if args.cap else None
    command = [sys.executable, "-m", "kvision", "run", str(recipe), "--run-dir", str(run_dir)]
    if group is not None:  # the child joins the group before it execs python
        command = ["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *command]
    env = {**os.environ, "KVISION_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    log = work / f"run-{n}.err"
    result = measure(command, env, output=False, stderr=log)
    wall = time.monotonic() - started
    if result["returncode"]:  # say why here: the run directory goes with the temporary folder
        print(f"run at {n:,} images exited {result['returncode']}:", file=sys.stderr)
        print(log.read_text()[-3000:], file=sys.stderr)
    hwm = hits = "-"
    if group is not None:
        hwm = f"{int((group / 'memory.max_usage_in_bytes').read_text()) / 2**20:,.0f} MiB"
        hits = (group / "memory.failcnt").read_text().strip()
        group.rmdir()
    counts = _counts(run_dir)
    row = (
        f"| {n:,} | {counts} | {result['returncode']} | {wall / 60:.1f} min | "
        f"{result['peak_anon_mib']:,.0f} MiB | {result['peak_rss_mib']:,.0f} MiB | {hwm} | "
        f"{hits} | {du(cache) / 2**20:,.0f} MiB |"
    )
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return row


def _counts(run_dir: Path) -> str:
    """train / val / test image counts from the run's data_loaded event."""
    events = run_dir / "events.jsonl"
    if not events.exists():
        return "-"
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "data_loaded":
            counts = event.get("counts", {})
            return " / ".join(f"{counts.get(s, 0):,}" for s in ("train", "val", "test"))
    return "-"


def main() -> None:
    """Run every size and print the Markdown table (and write it with --markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--cap", default="4G", help="memory cgroup cap (e.g. 4G; 0: none)")
    parser.add_argument("--downscale", type=int, default=8, help="alexnet_seed's width divisor")
    parser.add_argument("--eval-images", type=int, default=2000, help="evaluate.max_images")
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the table")
    args = parser.parse_args()
    from kvision.data.cache import parse_size

    args.cap = parse_size(args.cap) if args.cap not in ("0", "none") else 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="kvision-run-scale-") as tmp:
        for n in args.sizes:
            rows.append(run_once(n, args, Path(tmp)))
            text = _table(rows, args)
            if args.markdown:
                from kvision.bench.stamp import write_markdown

                title = "Report 000's run at N images (benchmarks/run_scale.py)"
                write_markdown(args.markdown, title, text, note=args.note)
    print(text, end="")


def _table(rows: list[str], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    cap = f"{args.cap / 2**30:g} GiB cgroup cap" if args.cap else "no cap"
    head = (
        f"Whole `kvision run` of report 000's settings ({cap}; alexnet_seed/{args.downscale}, "
        f"one epoch a stage, evaluate.max_images {args.eval_images}; first run, empty cache).\n\n"
        "| images | train / val / test | exit | wall | peak RssAnon | peak RSS | "
        "cgroup high-water (incl. page cache) | cap hits | cache on disk |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    tail = (
        f"\nLoad average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(1 / 5 / 15 min) on {os.cpu_count()} cores.\n"
    )
    return head + "\n".join(rows) + "\n" + tail


if __name__ == "__main__":
    main()
