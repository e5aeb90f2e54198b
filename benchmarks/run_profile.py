"""Where runs' wall time went, side by side: the ``profile.json`` of finished run directories.

``kvision run`` times its phases (kvision.runs.phases) and writes ``profile.json`` into the
run directory (``--profile`` also prints it). This script puts several runs' profiles in one
table, seconds and share of the wall time per phase, for comparing a change's before and
after; ``--markdown OUT`` writes the table stamped with machine, date and command.

    kvision run recipes/naive_vs_expert.toml --profile          # writes runs/<run>/profile.json
    python benchmarks/run_profile.py runs/A runs/B --label before --label after \\
        --markdown docs/measured/run_profile.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PROFILE = "profile.json"


def load(run_dir: Path) -> dict:
    """A run's profile, or SystemExit naming the directory that has none."""
    path = run_dir / PROFILE
    if not path.is_file():
        raise SystemExit(
            f"error: {run_dir} has no {PROFILE} (a run that finished writes one; "
            "kvision before issue 19 did not)"
        )
    profile = json.loads(path.read_text("utf-8"))
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text("utf-8")) if meta_path.is_file() else {}
    profile["argv"] = " ".join(meta.get("argv", []))
    return profile


def table(profiles: list[dict], labels: list[str]) -> str:
    """Markdown: one row per phase, seconds (share) per run, and the not-training share."""
    names: list[str] = []
    for profile in profiles:
        names += [n for n in profile["seconds"] if n not in names]
    lines = ["| phase | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for name in names:
        cells = [
            f"{p['seconds'][name]:.1f} s ({p['share'][name]:.1%})" if name in p["seconds"] else "-"
            for p in profiles
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **wall** | " + " | ".join(f"**{p['wall_seconds']:.1f} s**" for p in profiles) + " |"
    )
    lines.append(
        "| not training | " + " | ".join(f"{p['not_training_share']:.1%}" for p in profiles) + " |"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        help="a column's name, once per run (default: the directory's name)",
    )
    parser.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the table as Markdown to OUT, stamped with the machine, date and command",
    )
    parser.add_argument("--note", help="with --markdown: a note under the table")
    args = parser.parse_args()
    if args.label and len(args.label) != len(args.runs):
        parser.exit(
            2,
            f"error: {len(args.label)} --label for {len(args.runs)} runs; give one "
            "per run or none.\n",
        )
    labels = args.label or [r.name for r in args.runs]
    profiles = [load(r) for r in args.runs]
    text = table(profiles, labels)
    commands = "\n".join(
        f"- {label}: `{p['argv']}`" for label, p in zip(labels, profiles, strict=True)
    )
    body = f"{text}\n\nThe runs:\n\n{commands}\n"
    print(body)
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "Where the run's time went (benchmarks/run_profile.py)",
            body,
            note=args.note,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
