"""Training/inference speed of kvision's Keras models vs the same networks in plain PyTorch.

The same library code as ``kvision bench`` (kvision/bench/); see docs/speed.md. With
``--markdown OUT`` it also writes the table, stamped with machine, date and command.

    python benchmarks/train_speed.py                       # every case, train and infer
    python benchmarks/train_speed.py --case lenet-28-gray --mode train --repeats 5 --json
"""

from __future__ import annotations

import argparse

from kvision.bench.commands import BENCH_HELP, add_arguments
from kvision.bench.driver import main
from kvision.errors import KvisionError

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=BENCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    try:
        raise SystemExit(main(parser.parse_args()))
    except KvisionError as exc:
        parser.exit(2, f"error: {exc}\n")
