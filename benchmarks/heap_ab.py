"""The main job with the trainer's heap setting (kvision.train.heap) and without it, alternating.

Each round runs ``kvision run RECIPE --profile`` twice in fresh runs folders: as shipped, and
with ``KVISION_HEAP=glibc`` (glibc's own malloc thresholds). For each run: wall time, the
``train`` phase and the share that is not training (``profile.json``), user and system CPU
seconds, minor page faults and peak RSS of the run process (``os.wait4``). The evaluation
events of every run must be identical, or the script fails.

    python benchmarks/heap_ab.py [--rounds 2] [--markdown OUT] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import run_child  # noqa: E402 - the sibling benchmarks
from run_profile import load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "naive_vs_expert.toml"
SIDES = {
    "heap kept (as shipped)": {},
    "glibc default (KVISION_HEAP=glibc)": {"KVISION_HEAP": "glibc"},
}


def run_once(recipe: Path, env_extra: dict, runs: Path) -> dict:
    """One run's figures and its evaluation events."""
    from kvision.runs import RunReader

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env_extra
    cmd = [sys.executable, "-m", "kvision", "run", str(recipe), "--runs-dir", str(runs)]
    usage, wall = run_child([*cmd, "--profile"], ROOT, env)
    (run_dir,) = runs.iterdir()
    profile = load(run_dir)
    return {
        "wall_s": round(wall, 1),
        "train_s": round(profile["seconds"]["train"], 1),
        "not_training_pct": round(100 * profile["not_training_share"], 1),
        "user_s": round(usage.ru_utime, 1),
        "system_s": round(usage.ru_stime, 1),
        "minor_faults": usage.ru_minflt,
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "evaluations": [
            [e["trial"], e["checkpoint"], e["matrix"], e["loss"]]
            for e in RunReader(run_dir).evaluations()
        ],
    }


def table(rows: list[dict]) -> str:
    head = "| round | side | wall s | train s | not training | user s | system s | minor faults | peak RSS MiB |"
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['side']} | {r['wall_s']} | {r['train_s']} | "
            f"{r['not_training_pct']} % | {r['user_s']} | {r['system_s']} | "
            f"{r['minor_faults']:,} | {r['peak_rss_mib']:,} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the stamp")
    args = parser.parse_args()
    rows = []
    for n in range(1, args.rounds + 1):
        order = list(SIDES) if n % 2 else list(SIDES)[::-1]  # who goes first alternates
        for side in order:
            with tempfile.TemporaryDirectory(prefix="kvision-heap-") as tmp:
                rows.append(
                    {"round": n, "side": side, **run_once(args.recipe, SIDES[side], Path(tmp))}
                )
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if len({json.dumps(r["evaluations"]) for r in rows}) != 1:
        raise SystemExit("the runs' evaluations differ")
    body = (
        table(rows)
        + "\n\nEvery run's evaluations (each checkpoint's accuracy and loss matrices) are identical."
    )
    print(body)
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown, "The trainer's heap (benchmarks/heap_ab.py)", body, note=args.note
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
