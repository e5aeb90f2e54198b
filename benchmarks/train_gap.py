"""Where a kvision training step spends the time the tuned PyTorch step does not, layer by
layer: the epoch, the train steps alone, the forward and backward passes alone.

For one of ``kvision bench``'s cases (default VGG11/8, the training case furthest under 0.9x
tuned in the bench's tables) five loops run over the same uint8 batches, alternating round
after round in this process (torch threads as ``--threads``):

- kvision's epoch: the bench's kvision side, ``model.fit`` as a run calls it;
- kvision's train steps alone: Keras' ``train_step`` of the same compiled model, called in a
  loop on torch batches (no ``fit``: no epoch iterator, callbacks or per-call set-up);
- kvision's forward and backward alone: the model's call (the direct graph, uint8 in, cast
  and normalised inside), ``F.cross_entropy`` and ``backward``, gradients let go each step;
- the tuned PyTorch epoch: the bench's tuned side;
- the twin's forward and backward alone: the tuned side's module, channels-last, the batch
  cast and normalised as the tuned side does, the same loss and ``backward``.

The table gives milliseconds a step (median over rounds) of each loop and the differences
(each the median of the rounds' own differences) that locate the gap: what ``fit`` adds per step (its per-call set-up is spread over the
case's few steps), what Keras' train step adds around the passes (loss and metric
containers, the optimizer's ``apply``), and what the passes themselves cost on each side.

    python benchmarks/train_gap.py --rounds 15
    python benchmarks/train_gap.py --rounds 15 --markdown docs/measured/train_gap.md
"""

from __future__ import annotations

import statistics
import time

import kvision  # noqa: F401 - the torch backend before Keras

PASSES = 5  # epochs of the case a round times per loop, so a timing lasts a few tenths of a second


def _loops(case) -> dict:
    """The five loops of the docstring, each one epoch of the case's batches."""
    import torch
    import torch.nn.functional as F

    from kvision.bench import baselines, speed
    from kvision.data import make_batches

    images, labels = speed.case_data(case)
    model = speed.compiled_case_model(case)
    batches = make_batches(images, labels, batch_size=case.batch_size, seed=0, shuffle=True)
    fit_arguments = speed.fit_as_a_run()
    steps = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    twin = baselines.twin_model(case, torch.device("cpu")).to(memory_format=torch.channels_last)
    mean, std = baselines.MEAN_STD[0][0], baselines.MEAN_STD[1][0]

    def train_steps() -> None:
        for step in steps:
            model.train_step(step)

    def passes() -> None:
        for x, y in steps:
            F.cross_entropy(model.call(x, training=True), y.long()).backward()
            model.zero_grad()

    def twin_passes() -> None:
        twin.train()
        for x, y in steps:
            nchw = x.permute(0, 3, 1, 2).float().mul_(1 / (255 * std)).add_(-mean / std)
            F.cross_entropy(twin(nchw), y.long()).backward()
            twin.zero_grad(set_to_none=True)

    tuned = baselines.tuned_side(case, images, labels, "train", torch.device("cpu"))
    return {
        "epoch": lambda: model.fit(batches, **fit_arguments),
        "train steps": train_steps,
        "passes": passes,
        "tuned epoch": tuned.run,
        "twin passes": twin_passes,
    }


def measure(case_name: str, rounds: int, threads: int) -> tuple[dict[str, list[float]], int]:
    """Milliseconds a step of each loop, one figure per round, and the case's steps an epoch."""
    import torch

    from kvision.bench.driver import select_cases
    from kvision.train.heap import keep_large_blocks

    keep_large_blocks()  # as the trainer runs
    torch.set_num_threads(threads)
    case = select_cases([case_name], gpu=False, steps=None)[0]
    loops = _loops(case)
    millis: dict[str, list[float]] = {name: [] for name in loops}
    for round_ in range(rounds + 1):  # the first round warms up and is not counted
        for name, loop in loops.items():
            start = time.perf_counter()
            for _ in range(PASSES):
                loop()
            if round_:
                millis[name].append((time.perf_counter() - start) * 1000 / (PASSES * case.steps))
    return millis, case.steps


def table(ms: dict[str, list[float]], steps: int) -> str:
    """Each row's medians over the rounds; a difference is the median of the rounds' own
    differences (paired, so drift between rounds cancels)."""
    by_round = [dict(zip(ms, values, strict=True)) for values in zip(*ms.values(), strict=True)]

    def around(r: dict) -> tuple[float, float]:
        return r["train steps"] - r["passes"], r["tuned epoch"] - r["twin passes"]

    rows = {
        "an epoch (the bench's sides)": lambda r: (r["epoch"], r["tuned epoch"]),
        "the forward and backward passes alone": lambda r: (r["passes"], r["twin passes"]),
        "around the passes: loss, metrics, optimizer, loop": around,
        f"fit's own cost a step (its set-up over {steps} steps)": lambda r: (
            r["epoch"] - r["train steps"],
            0.0,
        ),
    }
    lines = ["| ms a step | kvision | tuned PyTorch | difference |", "|---|---:|---:|---:|"]
    for what, pair in rows.items():
        pairs = [pair(r) for r in by_round]
        ours, theirs = (statistics.median(side) for side in zip(*pairs, strict=True))
        gap = statistics.median(a - b for a, b in pairs)
        lines.append(f"| {what} | {ours:.2f} | {theirs:.2f} | {gap:+.2f} |")
    alone = statistics.median(ms["train steps"])
    lines.append(f"| kvision's train steps alone (no fit) | {alone:.2f} | | |")
    return "\n".join(lines)


def main() -> int:
    from kvision.bench.stamp import publish, rounds_parser

    parser = rounds_parser(__doc__, rounds=15)
    parser.add_argument("--case", default="vgg11/8-64", help="a kvision bench case name")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    ms, steps = measure(args.case, args.rounds, args.threads)
    title = f"Where the training step's time goes, {args.case}, {args.threads} threads (benchmarks/train_gap.py)"
    publish(table(ms, steps), title, args.markdown, args.note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
