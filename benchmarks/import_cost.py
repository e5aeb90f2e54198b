"""What each library adds to peak RSS on top of ``import kvision, keras``, and who needs it.

Each row is one fresh child process: it imports ``kvision`` and ``keras`` (or only torch for
the first rows), reads its peak resident set size, imports one more module and reads it
again. Resident memory does not depend on the machine's load, so the figures hold on a
shared machine too.

    python benchmarks/import_cost.py
    python benchmarks/import_cost.py --markdown docs/measured/import_cost.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

#: (what is imported first, the module added, who in a run needs it)
ROWS = (
    ("numpy", "torch", "the backend"),
    ("torch", "kvision, keras", "Keras itself (torch._dynamo and the deferred modules left out)"),
    (
        "kvision, keras",
        "torch._dynamo",
        "torch.compile, torch.export (the captured forward, `.pt2` export), a plain"
        " `model.compile` + `fit` (Keras builds its loss on the meta device); not the trainer",
    ),
    ("kvision, keras", "sklearn.model_selection", "stratified splits (every run)"),
    (
        "kvision, keras",
        "matplotlib.figure",
        "figures: the render worker, `kvision viz`/`compare` (not the trainer)",
    ),
    ("kvision, keras", "cv2", "image reading, blur, resizing (every run: kvision.data)"),
    ("kvision, keras", "h5py", "checkpoints and model.keras (the first save)"),
    ("kvision, keras", "scipy.special", "cross-entropy of the evaluation matrix"),
)

PROBE = """
import resource, sys
import {first}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import {added}
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before / 1024, after / 1024)
"""


def measure(first: str, added: str) -> tuple[float, float]:
    """(peak RSS MiB before, after) importing ``added`` on top of ``first``, in a child."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first, added=added)],
        capture_output=True,
        text=True,
        check=True,
    )
    before, after = map(float, out.stdout.split())
    return before, after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the stamp")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    rows = []
    for first, added, needed_by in ROWS:
        before, after = measure(first, added)
        rows.append(
            {"first": first, "added": added, "before_mib": round(before), "after_mib": round(after)}
            | {"adds_mib": round(after - before), "needed_by": needed_by}
        )
    lines = [
        "| on top of | import | peak RSS MiB | adds MiB | needed by |",
        "|---|---|---:|---:|---|",
    ]
    lines += [
        f"| `{r['first']}` | `{r['added']}` | {r['after_mib']} | +{r['adds_mib']} | {r['needed_by']} |"
        for r in rows
    ]
    print(json.dumps(rows, indent=2) if args.json else "\n".join(lines))
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "What each import costs (benchmarks/import_cost.py)",
            "\n".join(lines),
            note=args.note,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
