"""What one live-view tick costs on a big run: read new events, update widgets, repaint.

Writes a synthetic run directory (``--trials`` x ``--epochs`` epochs, events as kvision writes
them, the last trial still training), attaches kvision-tui's live view to it headless at
``--size``, then repeats ``--ticks`` times, one tick per ``--every`` seconds (the live view
polls twice a second): append one epoch and one progress event to the training trial (the
one the live view shows), call the screen's poll (``refresh_run``) and let Textual repaint.
Prints the median, mean and worst of the poll alone and of poll + repaint, and of an idle
tick (no new events). CPU time of the whole tick loop over its wall time is the share of one
core the live view takes while a run streams one epoch per tick.

    python benchmarks/tui_refresh.py [--trials 8] [--epochs 3000] [--ticks 20] [--size 130x40]
                                     [--every 0.5] [--markdown OUT] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

T0 = "2026-01-01T00:00:00+00:00"


class SyntheticRun:
    """A run directory written the way kvision writes one (events.jsonl + meta.json)."""

    def __init__(self, path: Path, trials: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        # our own pid: the run counts as running while the benchmark appends to it
        import os

        (path / "meta.json").write_text(
            json.dumps({"pid": os.getpid(), "host": None, "recipe_name": "big"})
        )
        self.names = [f"lenet-arm{t}" for t in range(trials)]
        self.events = open(path / "events.jsonl", "a")  # noqa: SIM115 - closed by close()
        self.emit(
            "run_started",
            recipe_name="big",
            run=path.name,
            trials=[
                {
                    "trial": n,
                    "model": "lenet",
                    "arm": f"arm{i}",
                    "stages": [{"name": "train", "condition": "clear", "epochs": 0}],
                }
                for i, n in enumerate(self.names)
            ],
        )

    def emit(
        self, event: str, trial: str | None = None, stage: str | None = None, **fields
    ) -> None:
        """One event line (plain appends: RunWriter's fsync per line is slow to set up)."""
        record = {"event": event, "time": T0, "trial": trial, "stage": stage, **fields}
        self.events.write(json.dumps(record) + "\n")

    def start_trial(self, t: int, epochs: int) -> None:
        """trial_started + stage_started of trial ``t``."""
        self.emit("trial_started", self.names[t], model="lenet", arm=f"arm{t}", params=1234)
        self.emit(
            "stage_started", self.names[t], "train", stage_index=0, condition="clear", epochs=epochs
        )

    def epoch(self, t: int, e: int) -> None:
        """epoch_end ``e`` of trial ``t``, with curves that fall like real ones."""
        self.emit(
            "epoch_end",
            self.names[t],
            "train",
            epoch=e,
            global_epoch=e,
            seconds=1.0,
            metrics={
                "loss": 1 / e,
                "accuracy": 1 - 1 / (e + 1),
                "val_loss": 1.1 / e,
                "val_accuracy": 0.9 - 1 / (e + 2),
                "lr": 1e-3,
            },
        )

    def progress(self, t: int, e: int) -> None:
        """A progress event in epoch ``e`` of trial ``t``."""
        self.emit("progress", self.names[t], "train", epoch=e, step=5, steps=10)

    def flush(self) -> None:
        """Make the appended lines visible to the reader."""
        self.events.flush()

    def close(self) -> None:
        """Close the events file."""
        self.events.close()


def write_big_run(path: Path, trials: int, epochs: int) -> SyntheticRun:
    """All trials with ``epochs`` epochs done, the last one started and still going."""
    run = SyntheticRun(path, trials)
    for t in range(trials):
        run.start_trial(t, epochs * 2 if t == trials - 1 else epochs)
        for e in range(1, epochs + 1):
            run.epoch(t, e)
        if t < trials - 1:
            run.emit("trial_finished", run.names[t], seconds=float(epochs))
    run.flush()
    return run


async def measure(
    pilot, run: SyntheticRun, trials: int, epochs: int, ticks: int, every: float
) -> dict:
    """Attach is done by the app; time ``ticks`` growing ticks and as many idle ones."""
    app = pilot.app
    for _ in range(2000):
        screen = app.screen
        if getattr(screen, "state", None) is not None and screen.state.trials:
            break
        await pilot.pause(0.01)
    live = app.screen
    await pilot.pause()
    # watch the trial that trains, as a user would: a live view that follows the run shows
    # it by itself; one that does not is moved there with its next-trial key (t)
    header = live.query_one("#run-header")
    for _ in range(trials):
        if f"trial {run.names[-1]} " in str(header.render()):
            break
        await pilot.press("t")
    else:
        raise SystemExit(f"the live view never showed {run.names[-1]}")
    poll, tick, idle = [], [], []
    epoch = epochs
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(ticks):
        await pilot.pause(every)
        epoch += 1
        run.epoch(trials - 1, epoch)
        run.progress(trials - 1, epoch + 1)
        run.flush()
        t0 = time.perf_counter()
        live.refresh_run()
        t1 = time.perf_counter()
        await pilot.pause()  # Textual repaints the widgets the poll changed
        t2 = time.perf_counter()
        poll.append(t1 - t0)
        tick.append(t2 - t0)
    share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    for _ in range(ticks):
        t0 = time.perf_counter()
        live.refresh_run()
        await pilot.pause()
        idle.append(time.perf_counter() - t0)
    return {"poll": poll, "tick": tick, "idle": idle, "share": share}


CHILD = """
import asyncio, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import tui_refresh as bench
from kvision_tui.app import build_app

path, trials, epochs, ticks, w, h = (sys.argv[2], *map(int, sys.argv[3:8]))
every = float(sys.argv[8])
run = bench.write_big_run(Path(path), trials, epochs)
app = build_app(["--runs-dir", str(Path(path).parent), "--attach", path, "--images", "halfblock"])
result = {}

async def auto(pilot):
    result.update(await bench.measure(pilot, run, trials, epochs, ticks, every))
    app.exit()

app.run(headless=True, size=(w, h), auto_pilot=auto)
run.close()
print(json.dumps(result))
"""


def _ms(values: list[float]) -> str:
    return (
        f"median {1000 * statistics.median(values):.1f} ms, mean "
        f"{1000 * statistics.mean(values):.1f} ms, worst {1000 * max(values):.1f} ms"
    )


def main() -> None:
    """Run the measurement in a fresh process and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--size", default="130x40")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between ticks")
    parser.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the results to OUT, stamped with machine, date, command",
    )
    parser.add_argument("--note", help="with --markdown: a note under the results")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "runs", "20260101-000000-big")
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(Path(__file__).parent),
                str(path),
                str(args.trials),
                str(args.epochs),
                str(args.ticks),
                str(w),
                str(h),
                str(args.every),
            ],
            capture_output=True,
            text=True,
        )
    if out.returncode:
        sys.exit(out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    setup = (
        f"{args.trials} trials x {args.epochs} epochs, {args.size}, {args.ticks} ticks "
        f"every {args.every} s"
    )
    print(f"# {when}, {platform.node()} ({platform.processor() or platform.machine()}), {setup}")
    lines = [
        f"tick with 1 new epoch, poll only: {_ms(result['poll'])}",
        f"tick with 1 new epoch, poll + repaint: {_ms(result['tick'])}",
        f"idle tick (no new events) + repaint: {_ms(result['idle'])}",
        f"CPU while streaming: {100 * result['share']:.0f}% of one core",
    ]
    print("\n".join(lines))
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            f"TUI live refresh (benchmarks/tui_refresh.py): {setup}",
            "\n".join(f"- {line}" for line in lines),
            note=args.note,
        )


if __name__ == "__main__":
    main()
