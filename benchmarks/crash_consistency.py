"""Crash consistency, measured: kill a small run with SIGKILL at N random instants, resume
each, and check that every resumed run ends exactly like the uninterrupted one.

    python benchmarks/crash_consistency.py --n 20 [--seed 0] [--jobs 2] [--out crash.json]

Half the kills fall at a random time spread over the run (from the moment its run directory
exists to its end); the other half inside a random write: the process kills itself just
before the k-th rename of a completed temporary file (k drawn from the renames the reference
run made), so checkpoints, insight pictures, report.md and model.keras are all hit. After
each kill ``kvision run --resume`` must exit 0, and the resumed run's evaluations (every
checkpoint's matrix and losses) and final weights (model.keras) must equal the reference's.

Kills run ``--jobs`` at a time (default 2), each with its resume in its own run directory:
a run of this small recipe spends most of its time importing torch and Keras on one core, so
the suite's N = 4 took 41 s on 2 cores where one kill after the other took 49 s. A run
sharing the machine runs slower than the reference did alone, so a time kill lands a little
earlier in its run; the write kills hit every rename whatever the load.

Exit status 0 when every resumed run matched, 1 otherwise. Timings depend on the machine's
load; the verdict does not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: Set in a child to kill itself just before its k-th os.replace (a finished temp file).
KILL_AT_RENAME = "KVISION_CRASH_AT_RENAME"
#: Set in a child to count its renames into this file (the reference run).
COUNT_RENAMES = "KVISION_CRASH_COUNT_RENAMES"

RECIPE = """\
[experiment]
name = "crash"
seed = 5

[data]
source = "builtin:fashion7k"
limit_per_class = 4
val_fraction = 0.25

[conditions.clear]

[models.lenet]
arch = "lenet"

[[arms]]
name = "two_stages"
stages = [
  { name = "pretrain", condition = "clear", epochs = 1 },
  { name = "train", condition = "clear", epochs = 2, early_stopping = { patience = 3 } },
]

[training]
batch_size = 8

[evaluate]
conditions = ["clear"]
splits = ["train", "test"]

[insight]
enabled = true
activations = false
classification = false
cam = { enabled = false }
robustness = { enabled = false }
"""


def child(argv: list[str]) -> int:
    """Run ``kvision`` in this process, killing itself at the k-th rename when asked to."""
    kill_at = int(os.environ.get(KILL_AT_RENAME, "0"))
    count_file = os.environ.get(COUNT_RENAMES)
    original, calls, counts = os.replace, [0], {}
    # Checkpoints are committed on a background thread, so renames come from two threads:
    # count them, and write the count file, under one lock.
    lock = threading.Lock()

    def replace(src, dst, *args, **kw):
        with lock:
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # the temp file is complete, not renamed
            result = original(src, dst, *args, **kw)
            if count_file:
                counts["renames"] = calls[0]
                if Path(dst).name == "meta.json":
                    counts.setdefault("meta", calls[0])  # from here on the run can be resumed
                Path(count_file).write_text(json.dumps(counts))
        return result

    os.replace = replace
    from kvision.cli import main

    return main(argv)


def _kvision(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(run_dir: Path) -> tuple[dict, list]:
    """Every checkpoint's evaluation (latest per trial and checkpoint) and the final weights."""
    import numpy as np

    from kvision.models import load_model
    from kvision.runs import RunReader

    evals = {
        f"{e['trial']}/{e['checkpoint']}": (e["matrix"], e["loss"])
        for e in RunReader(run_dir).evaluations()
    }
    weights = []
    for path in sorted(run_dir.glob("trials/*/model.keras")):
        weights += [np.asarray(w) for w in load_model(path).get_weights()]
    return evals, weights


def same(a: tuple[dict, list], b: tuple[dict, list]) -> bool:
    import numpy as np

    return (
        a[0] == b[0]
        and len(a[1]) == len(b[1])
        and all(np.array_equal(x, y) for x, y in zip(a[1], b[1], strict=True))
    )


def reference(work: Path, recipe: Path, timeout: float) -> tuple[Path, float, float, range]:
    """The uninterrupted run: its directory, when its run directory appeared, its end, and
    the renames made once it could be resumed (after meta.json)."""
    from kvision.runs import is_run_dir

    run_dir, counts = work / "reference", work / "renames.json"
    env = dict(os.environ, **{COUNT_RENAMES: str(counts)})
    start = time.monotonic()
    proc = _kvision(["run", str(recipe), "--run-dir", str(run_dir)], env)
    appeared = None
    while proc.poll() is None and time.monotonic() - start < timeout:
        # The kills' clock starts here too (_wait_for_run_dir): once meta.json is written,
        # after the imports, not when events.jsonl appears before them.
        if appeared is None and is_run_dir(run_dir):
            appeared = time.monotonic() - start
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        raise SystemExit("the reference run did not finish in time")
    if proc.returncode != 0:
        raise SystemExit(
            f"the reference run failed ({proc.returncode}): {proc.stderr.read()[-2000:]}"
        )
    seen = json.loads(counts.read_text())
    return (
        run_dir,
        appeared or 0.0,
        time.monotonic() - start,
        range(seen["meta"] + 1, seen["renames"] + 1),
    )


def one_kill(work: Path, recipe: Path, i: int, plan: dict, timeout: float) -> dict:
    """Kill one run as ``plan`` says, resume it, and report what happened."""
    run_dir = work / f"kill-{i:03d}"
    env = dict(os.environ)
    if plan["mode"] == "write":
        env[KILL_AT_RENAME] = str(plan["rename"])
    proc = _kvision(["run", str(recipe), "--run-dir", str(run_dir)], env)
    if plan["mode"] == "time":
        _wait_for_run_dir(proc, run_dir, timeout)  # instants count from the run's start
    try:
        proc.wait(timeout=plan.get("seconds", timeout))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    resumed = _kvision(["run", "--resume", str(run_dir)])
    try:
        resumed.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        resumed.kill()
        resumed.wait()
    return {
        **plan,
        "killed": killed,
        "exit": proc.returncode,
        "resume_exit": resumed.returncode,
        "run_dir": str(run_dir),
        "resume_stderr": resumed.stderr.read()[-1500:],
    }


def _wait_for_run_dir(proc: subprocess.Popen, run_dir: Path, timeout: float) -> None:
    """Until the run directory holds meta.json and events.jsonl (imports take a while)."""
    from kvision.runs import is_run_dir

    end = time.monotonic() + timeout
    while proc.poll() is None and not is_run_dir(run_dir) and time.monotonic() < end:
        time.sleep(0.02)


def plans(
    n: int, rng: random.Random, appeared: float, seconds: float, renames: range
) -> list[dict]:
    """N kills: even ones at stratified random times after the run directory appeared (so
    they spread over the run itself, not the imports before it), odd ones inside writes."""
    out = []
    times = n - n // 2
    for i in range(n):
        if i % 2 == 0:
            slot = i // 2
            t = (slot + rng.random()) / times * (seconds - appeared)
            out.append({"mode": "time", "seconds": round(t, 2)})
        else:
            out.append({"mode": "write", "rename": rng.choice(renames)})
    return out


def _report(i: int, result: dict, expected: tuple[dict, list], n: int) -> dict:
    """Kill ``i``'s ``result`` with its verdict, printed as one line (and the resume's stderr
    if it differs)."""
    result["matched"] = result["resume_exit"] == 0 and same(
        outcome(Path(result["run_dir"])), expected
    )
    where = (
        f"t=+{result['seconds']:.1f}s"
        if result["mode"] == "time"
        else f"rename #{result['rename']}"
    )
    print(
        f"kill {i + 1:2d}/{n} {result['mode']:5s} {where:14s} killed={result['killed']!s:5s} "
        f"resume exit {result['resume_exit']}  {'matched' if result['matched'] else 'DIFFERENT'}",
        flush=True,
    )
    if not result["matched"]:
        print(result["resume_stderr"], file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="number of kills (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill instants")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="kills (each with its resume) running at once (default 2)",
    )
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--keep", help="keep the run directories in this folder")
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="kvision-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _measure(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _measure(args: argparse.Namespace, work: Path) -> int:
    recipe = work / "crash.toml"
    recipe.write_text(RECIPE)
    started = time.monotonic()
    ref_dir, appeared, seconds, renames = reference(work, recipe, args.timeout)
    expected = outcome(ref_dir)
    print(
        f"reference run: {seconds:.1f} s (run directory after {appeared:.1f} s), "
        f"renames #{renames.start}-#{renames.stop - 1} after meta.json, "
        f"{len(expected[0])} evaluations",
        flush=True,
    )
    kills = plans(args.n, random.Random(args.seed), appeared, seconds, renames)
    # Each kill and its resume touch only their own run directory, so --jobs of them run at
    # once: a run spends most of its time importing torch and Keras on one core. Outcomes
    # are read here, one at a time (loading models is not thread-safe in Keras).
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = pool.map(
            lambda ip: one_kill(work, recipe, ip[0], ip[1], args.timeout), enumerate(kills)
        )
        results = [_report(i, result, expected, args.n) for i, result in enumerate(done)]
    matched = sum(r["matched"] for r in results)
    summary = {
        "n": args.n,
        "matched": matched,
        "killed": sum(r["killed"] for r in results),
        "reference_seconds": round(seconds, 1),
        "renames": [renames.start, renames.stop - 1],
        "seed": args.seed,
        "total_seconds": round(time.monotonic() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": os.uname().nodename,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "kills": results,
    }
    print(
        f"{matched}/{args.n} resumed runs matched the uninterrupted run "
        f"({summary['killed']} were killed before they ended; {summary['total_seconds']} s in all)"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0 if matched == args.n else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(sys.argv[2:]))
    sys.exit(main())
