"""The main job with the trainer's heap setting (kvision.train.heap) and without it, alternating.

Each round runs ``kvision run RECIPE --profile`` twice in fresh runs folders: as shipped, and
with ``KVISION_HEAP=glibc`` (glibc's own malloc thresholds). For each run: wall time, the
``train`` phase and the share that is not training (``profile.json``), user and system CPU
seconds, minor page faults and peak RSS of the run process (``os.wait4``). The final
evaluation lines of every run must be identical, or the script fails.

    python benchmarks/heap_ab.py [--rounds 2] [--markdown OUT] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "naive_vs_expert.toml"
SIDES = {
    "heap kept (as shipped)": {},
    "glibc default (KVISION_HEAP=glibc)": {"KVISION_HEAP": "glibc"},
}


def run_once(recipe: Path, env_extra: dict, runs: Path) -> dict:
    """One run's figures and its evaluation lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env_extra
    cmd = [sys.executable, "-m", "kvision", "run", str(recipe), "--runs-dir", str(runs)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd + ["--profile"], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-2000:]}")
    (run_dir,) = runs.iterdir()
    profile = json.loads((run_dir / "profile.json").read_text("utf-8"))
    return {
        "wall_s": round(wall, 1),
        "train_s": round(profile["seconds"]["train"], 1),
        "not_training_pct": round(100 * profile["not_training_share"], 1),
        "user_s": round(usage.ru_utime, 1),
        "system_s": round(usage.ru_stime, 1),
        "minor_faults": usage.ru_minflt,
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "evaluations": [line for line in out.splitlines() if "(accuracy)" in line],
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
    if len({tuple(r["evaluations"]) for r in rows}) != 1:
        raise SystemExit("the runs' evaluation lines differ")
    body = table(rows) + "\n\nEvery run's evaluation lines are identical."
    print(body)
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown, "The trainer's heap (benchmarks/heap_ab.py)", body, note=args.note
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
