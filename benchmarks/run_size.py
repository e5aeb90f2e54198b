"""What a run directory holds, by part, and which part each command needs (docs/training.md).

Sums the bytes of one finished run directory by what they are for: the trained models
(``trials/*/model.keras``: needed only by export, predict and viz), resumable checkpoints
(kept only while a run is unfinished), pictures, and the record itself (events, recipe,
meta, JSON tables, report.md: what show, ls, compare, report.md and the TUI read).

    python benchmarks/run_size.py RUN_DIR [--markdown OUT] [--note TEXT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: (part, what needs it), in the order the table lists them
PARTS = (
    ("models", "trained models (trials/*/model.keras): kvision export, predict, viz"),
    (
        "checkpoints",
        "checkpoints (trials/*/checkpoints/): kvision run --resume; deleted when a trial finishes",
    ),
    ("images", "pictures (images/): report.md's figures, the TUI's Images screen"),
    (
        "record",
        "the record (events, recipe, meta, JSON tables, report.md, logs): show, ls, "
        "compare, the TUI, report.md",
    ),
)


def part_of(path: Path, run: Path) -> str:
    """Which part of the run a file belongs to."""
    rel = path.relative_to(run).parts
    if rel[0] == "trials" and "checkpoints" in rel:
        return "checkpoints"
    if rel[0] == "trials" and path.suffix == ".keras":
        return "models"
    if rel[0] == "images":
        return "images"
    return "record"


def measure(run: Path) -> dict[str, int]:
    """Bytes per part."""
    sizes = dict.fromkeys((p for p, _ in PARTS), 0)
    for f in run.rglob("*"):
        if f.is_file() and not f.is_symlink():
            sizes[part_of(f, run)] += f.stat().st_size
    return sizes


def table(run: Path, sizes: dict[str, int]) -> str:
    total = sum(sizes.values())
    rows = [
        f"| {what} | {sizes[part] / 1e6:,.1f} MB | {100 * sizes[part] / max(total, 1):.0f}% |"
        for part, what in PARTS
    ]
    models = sorted(run.glob("trials/*/model.keras"))
    each = ", ".join(f"{m.parent.name} {m.stat().st_size / 1e6:.1f} MB" for m in models)
    return "\n".join(
        [
            f"Run `{run.name}` ({len(models)} trials): {total / 1e6:,.1f} MB in all.",
            "",
            "| part (what needs it) | size | share |",
            "|---|---:|---:|",
            *rows,
            "",
            f"Models: {each or 'none'}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped, here")
    parser.add_argument("--note", help="a note for the stamp (e.g. the machine was shared)")
    args = parser.parse_args()
    body = table(args.run, measure(args.run))
    print(body)
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "What a run directory holds (benchmarks/run_size.py)",
            body,
            note=args.note,
        )


if __name__ == "__main__":
    main()
