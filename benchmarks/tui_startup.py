"""How long kvision-tui takes to show its first screen, from a cold interpreter.

Each round starts a fresh Python process that builds the app as ``kvision-tui`` does, runs
it headless until the first screen (the recipes list) has been composed and laid out, then
exits; the figure is the wall time of that whole process, interpreter start included.

With ``--big-run TRIALSxEPOCHS`` it also writes a synthetic run of that size with
kvision's own RunWriter and times attaching the live view to it (``--attach``), one more
poll after 50 new epochs, and an idle poll.

    python benchmarks/tui_startup.py [--rounds 5] [--recipes recipes] [--size 80x24]
                                     [--big-run 8x3000] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROBE = """
import sys
from kvision_tui.app import build_app

app = build_app([{recipes!r}, "--images", "halfblock"])

async def first_screen(pilot):
    await pilot.pause()  # compose + first layout/refresh of the recipes screen
    heavy = sorted(m for m in ("keras", "torch", "cv2") if m in sys.modules)
    print("heavy modules:", heavy or "none")
    app.exit()

app.run(headless=True, size=({w}, {h}), auto_pilot=first_screen)
"""


def measure(recipes: str, size: tuple[int, int]) -> tuple[float, str]:
    """Seconds for one cold start to first screen, and the probe's output line."""
    code = PROBE.format(recipes=recipes, w=size[0], h=size[1])
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout.strip()


BIG = """
import json, sys, time
from kvision.runs import atomic_write_json
from kvision_tui.app import build_app

run, trials, epochs, recipes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
atomic_write_json(f"{run}/meta.json", {"pid": None})
events = open(f"{run}/events.jsonl", "a")  # plain appends: RunWriter's fsync per line is slow
def emit(event, trial=None, stage=None, **fields):
    record = {"event": event, "time": "2026-01-01T00:00:00+00:00", "trial": trial,
              "stage": stage, **fields}
    events.write(json.dumps(record) + "\\n")
def epoch(t, e):
    emit("epoch_end", f"t{t}", "s", epoch=e, global_epoch=e, seconds=1.0,
         metrics={"loss": 1 / e, "accuracy": 1 - 1 / e, "val_loss": 1.1 / e,
                  "val_accuracy": 0.9 - 1 / e, "lr": 1e-3})
emit("run_started", recipe_name="big", trials=[])
for t in range(trials):
    emit("trial_started", f"t{t}", model="m", arm="a")
    emit("stage_started", f"t{t}", "s", stage_index=0, epochs=epochs)
    for e in range(1, epochs + 1):
        epoch(t, e)
events.flush()

start = time.perf_counter()
app = build_app([recipes, "--attach", run, "--images", "halfblock"])

async def measure(pilot):
    while not (getattr(pilot.app.screen, "_table_trial", None)):
        await pilot.pause(0.01)
    opened = time.perf_counter() - start
    live = pilot.app.screen
    for e in range(epochs + 1, epochs + 51):
        epoch(trials - 1, e)
    events.flush()
    t0 = time.perf_counter(); live.refresh_run(); grew = time.perf_counter() - t0
    t0 = time.perf_counter(); live.refresh_run(); idle = time.perf_counter() - t0
    print(f"attach to {trials}x{epochs} epochs: live view ready in {opened:.2f} s; "
          f"poll with 50 new epochs {1000 * grew:.1f} ms; idle poll {1000 * idle:.2f} ms")
    pilot.app.exit()

app.run(headless=True, size=(120, 40), auto_pilot=measure)
"""


def measure_big_run(recipes: str, trials: int, epochs: int) -> str:
    """The big-run line (the synthetic run is written into a temporary folder)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "20260101-000000-big").mkdir()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                BIG,
                f"{tmp}/20260101-000000-big",
                str(trials),
                str(epochs),
                recipes,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return out.stdout.strip()


def main() -> None:
    """Run the rounds and print each time, the median and the best (--markdown: write them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--recipes", default="recipes")
    parser.add_argument("--size", default="80x24")
    parser.add_argument(
        "--big-run",
        metavar="TRIALSxEPOCHS",
        help="also time the live view on a synthetic run of this size",
    )
    parser.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the results to OUT, stamped with machine, date, command",
    )
    parser.add_argument("--note", help="with --markdown: a note under the results")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    times, lines = [], []
    for i in range(args.rounds):
        seconds, line = measure(args.recipes, size)  # type: ignore[arg-type]
        times.append(seconds)
        lines.append(f"round {i + 1}: {seconds:.3f} s  ({line})")
        print(lines[-1])
    lines.append(
        f"first screen ({args.size}): median {statistics.median(times):.3f} s, best "
        f"{min(times):.3f} s over {args.rounds} cold starts (budget 1.5 s)"
    )
    print(lines[-1])
    if args.big_run:
        trials, epochs = (int(v) for v in args.big_run.split("x"))
        lines.append(measure_big_run(args.recipes, trials, epochs))
        print(lines[-1])
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "TUI start-up (benchmarks/tui_startup.py)",
            "\n".join(f"- {line}" for line in lines),
            note=args.note,
        )


if __name__ == "__main__":
    main()
