"""How long kvision-tui takes to show its first screen, from a cold interpreter.

Each round starts a fresh Python process that builds the app as ``kvision-tui`` does, runs
it headless until the first screen (the recipes list) has been composed and laid out, then
exits; the figure is the wall time of that whole process, interpreter start included.

    python benchmarks/tui_startup.py [--rounds 5] [--recipes recipes] [--size 80x24]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return time.perf_counter() - start, out.stdout.strip()


def main() -> None:
    """Run the rounds and print each time, the median and the best."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--recipes", default="recipes")
    parser.add_argument("--size", default="80x24")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    times = []
    for i in range(args.rounds):
        seconds, line = measure(args.recipes, size)  # type: ignore[arg-type]
        times.append(seconds)
        print(f"round {i + 1}: {seconds:.3f} s  ({line})")
    print(f"first screen: median {statistics.median(times):.3f} s, best {min(times):.3f} s "
          f"over {args.rounds} cold starts (budget 1.5 s)")


if __name__ == "__main__":
    main()
