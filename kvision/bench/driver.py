"""What ``kvision bench`` and ``benchmarks/train_speed.py`` run: pick cases, time, print."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from kvision.errors import KvisionError, unknown_name


def select_cases(names: list[str] | None, *, gpu: bool, steps: int | None):
    """The default cases, filtered by name (unknown -> KvisionError), steps overridden."""
    from kvision.bench.speed import default_cases

    cases = {case.name: case for case in default_cases(gpu)}
    for name in names or []:
        if name not in cases:
            raise unknown_name("benchmark case", name, cases)
    chosen = [cases[n] for n in names] if names else list(cases.values())
    if steps is not None:
        if steps < 1:
            raise KvisionError(f"--steps must be a positive number of batches. Received: {steps}.")
        chosen = [dataclasses.replace(case, steps=steps) for case in chosen]
    return chosen


def main(args: argparse.Namespace) -> int:
    """Run the selected cases and modes; print a table (or JSON with ``--json``). The torch
    thread count is ``--threads`` while it runs and what it was afterwards, so that a caller
    in the same process (a notebook, a test) keeps its own."""
    _check(args)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    import torch

    from kvision.bench.speed import format_table, run_case

    if args.mixed_precision and not torch.cuda.is_available():
        raise KvisionError(
            "--mixed-precision needs a CUDA device (float16 autocast); torch sees none here."
        )
    cases = select_cases(args.cases, gpu=torch.cuda.is_available(), steps=args.steps)
    if args.list:
        for case in cases:
            print(
                f"{case.name:<22}{case.arch} {case.size}x{case.size}x{case.channels} "
                f"batch {case.batch_size}, {case.steps} steps, options {case.options}"
            )
        return 0
    modes = ("train", "infer") if args.mode == "both" else (args.mode,)
    results = []
    for case in cases:
        for mode in modes:
            results.append(
                run_case(
                    case,
                    mode,
                    repeats=args.repeats,
                    min_seconds=args.min_seconds,
                    compile=args.compile,
                    mixed=args.mixed_precision,
                )
            )
            # Progress on stderr, so a long run shows each case as it finishes.
            print(format_table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps([r.summary() for r in results], indent=2))
    else:
        print(_report(results, args))
    if args.markdown:
        from kvision.bench.speed import markdown_table
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "kvision bench",
            markdown_table(results, torch.get_num_threads(), args.min_seconds),
            note=args.note,
        )
    return 0


def _check(args: argparse.Namespace) -> None:
    if args.repeats < 1 or args.threads < 1 or not args.min_seconds >= 0:
        raise KvisionError(
            f"--repeats and --threads must be at least 1 and --min-seconds at least 0. Received: "
            f"--repeats {args.repeats}, --threads {args.threads}, --min-seconds {args.min_seconds}."
        )


def _report(results: list, args: argparse.Namespace) -> str:
    """The settings line, the table, disturbed repeats and compile notes."""
    import torch

    from kvision.bench.speed import format_compile, format_disturbed, format_table

    settings = (
        f"torch threads: {torch.get_num_threads()}, device: {results[0].device}, "
        f"{args.repeats} alternating repeats of at least {args.min_seconds:g} s, "
        f"tuned side compiled: {'yes' if args.compile else 'no'}, mixed precision: "
        f"{'yes' if args.mixed_precision else 'no'}"
    )
    notes = [format_disturbed(results), format_compile(results)]
    return "\n".join([settings, format_table(results), *(n for n in notes if n)])
