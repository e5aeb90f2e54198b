"""Data parallel over several machines: `kvision run --nnodes/--node-rank/--rdzv-endpoint`.

Two local "nodes" of one gloo process each meet through torchrun's static rendezvous, as two
machines would; they must train like one process, stop together and resume together.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from kvision.cli import main
from kvision.runs import RunReader

# No dropout or BatchNorm (per rank in DDP), 32 pairs in batches of 8: every batch splits 4/4
# over the two ranks, so the train loss is comparable too, not only the weights.
RECIPE = textwrap.dedent("""\
    [experiment]
    name = "nodes"
    seed = 3

    [data]
    source = "function:x**2 + 2*cos(x)"

    [data.function]
    domain = [-2.0, 3.0]
    train_points = 32
    val_points = 16
    test_points = 40
    noise = 0.3

    [models.mlp]
    arch = "mlp"
    hidden = [16, 16]
    activation = "sigmoid"

    [training]
    optimizer = { name = "adam", learning_rate = 0.02 }
    loss = "mse"
    batch_size = 8

    [[arms]]
    name = "fit"
    stages = [{ name = "fit", condition = "clear", epochs = 120 }]

    [evaluate]
    splits = ["train", "test"]
    before = false

    [output]
    checkpoint_every = 5
    print_every = 1000
    save_models = false

    [insight]
    enabled = false
    """)
# The tolerance of tests/test_distributed_gloo.py (two ranks against one process).
RTOL, ATOL = 1e-4, 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(args: list[str], log: Path) -> list[subprocess.Popen]:
    """The same command on two "machines", node 0 and node 1, meeting at one endpoint."""
    endpoint = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for rank in (0, 1):
        out = open(log.with_suffix(f".node{rank}.log"), "ab")  # noqa: SIM115 - closed by the child's exit
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kvision",
                    "run",
                    *args,
                    "--nnodes",
                    "2",
                    "--node-rank",
                    str(rank),
                    "--rdzv-endpoint",
                    endpoint,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
    return procs


def _wait_all(procs: list[subprocess.Popen], log: Path, timeout: float = 240) -> list[int]:
    try:
        return [p.wait(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        raise AssertionError(_logs(log)) from None


def _logs(log: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace")[-3000:]
        for p in sorted(log.parent.glob(f"{log.stem}.node*.log"))
    )


def _epochs(run_dir: Path) -> list[dict]:
    return sorted(RunReader(run_dir).epochs(), key=lambda e: e["global_epoch"])


def _assert_same(ddp: list[dict], single: list[dict]) -> float:
    """Every epoch's loss and val_loss within the tolerance; returns the largest difference."""
    assert [e["global_epoch"] for e in ddp] == [e["global_epoch"] for e in single]
    worst = 0.0
    for a, b in zip(ddp, single, strict=True):
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(
                a["metrics"][key],
                b["metrics"][key],
                rtol=RTOL,
                atol=ATOL,
                err_msg=f"epoch {a['global_epoch']} {key}",
            )
            worst = max(worst, abs(a["metrics"][key] - b["metrics"][key]))
    return worst


# three runs, two of them two processes each (torch + Keras): 1-3 min on 2 busy cores
@pytest.mark.slow(seconds=25)
@pytest.mark.timeout(600)
def test_two_nodes_train_like_one_process_and_resume_after_both_stop(tmp_path):
    recipe = tmp_path / "nodes.toml"
    recipe.write_text(RECIPE)
    single = tmp_path / "single"
    assert main(["run", str(recipe), "--run-dir", str(single)]) == 0

    run_dir, log = tmp_path / "two", tmp_path / "nodes"
    procs = _nodes([str(recipe), "--run-dir", str(run_dir)], log)
    deadline = time.monotonic() + 240
    while len(RunReader(run_dir).epochs()) < 12 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), _logs(log)
        time.sleep(0.1)
    for p in procs:  # both machines are stopped (SIGTERM to each torchrun)
        p.send_signal(signal.SIGTERM)
    _wait_all(procs, log)
    stopped = RunReader(run_dir)
    assert stopped.status() == "interrupted", _logs(log)
    assert 10 <= len(stopped.epochs()) < 120  # stopped inside the stage, after a checkpoint

    procs = _nodes(["--resume", str(run_dir)], log)
    assert _wait_all(procs, log) == [0, 0], _logs(log)
    resumed = RunReader(run_dir)
    assert resumed.status() == "finished" and resumed.of("run_resumed")
    worst = _assert_same(_epochs(run_dir), _epochs(single))
    ddp_eval, one_eval = resumed.evaluations()[-1], RunReader(single).evaluations()[-1]
    for split in ("train", "test"):
        np.testing.assert_allclose(
            ddp_eval["loss"]["clear"][split], one_eval["loss"]["clear"][split], rtol=RTOL, atol=ATOL
        )
    resumed_at = resumed.of("run_resumed")[0]["resume_points"]["mlp-fit"]["global_epoch"]
    print(
        f"\ntwo nodes, stopped at epoch {len(stopped.epochs())} and resumed from {resumed_at}: "
        f"largest epoch-metric difference to one process {worst:.1e}; test MSE "
        f"{ddp_eval['loss']['clear']['test']} (two nodes) vs {one_eval['loss']['clear']['test']} (one)"
    )
    first, last = _epochs(single)[0]["metrics"]["loss"], _epochs(single)[-1]["metrics"]["loss"]
    assert last < 0.5 * first  # it learned: agreeing means something


def test_nodes_become_torchrun_static_rendezvous(monkeypatch):
    from kvision.train import launch as ddp_launch

    seen = []
    monkeypatch.setattr(ddp_launch.os, "execv", lambda exe, cmd: seen.append(cmd))
    monkeypatch.setattr(ddp_launch.torch.cuda, "is_available", lambda: False)
    ddp_launch.launch(
        1,
        [
            "run",
            "r.toml",
            "--nnodes",
            "2",
            "--node-rank=1",
            "--rdzv-endpoint",
            "10.0.0.1:29500",
            "--gpus",
            "1",
        ],
        ddp_launch.Nodes(2, 1, "10.0.0.1:29500"),
    )
    assert seen[0][1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--node-rank=1",
        "--rdzv-backend=static",
        "--rdzv-endpoint=10.0.0.1:29500",
        "--nproc-per-node=1",
        "-m",
        "kvision",
        "run",
        "r.toml",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nnodes", "2"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
        (
            ["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"],
            "--node-rank 2 is outside 0..1",
        ),
        (["--node-rank", "1"], "--node-rank 1 is outside 0..0"),
        (["--nnodes", "2", "--rdzv-endpoint", "10.0.0.1"], "'10.0.0.1' is not HOST:PORT"),
        (["--nnodes", "0"], "--nnodes must be at least 1"),
    ],
)
def test_bad_node_options_are_one_clear_line(tmp_path, capsys, args, message):
    assert main(["run", str(tmp_path / "r.toml"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _check_rank(rank: int, port: int, out: str) -> None:
    """One gloo rank of two; only rank 1 "cannot see" the folder."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
    )
    from kvision.errors import KvisionError
    from kvision.train.ranks import check_everywhere, init_from_env, shared_dir_problem

    assert init_from_env()
    folder = Path(out) / "elsewhere"
    try:
        check_everywhere(rank == 0, shared_dir_problem(folder))
        message = "went on"
    except KvisionError as exc:
        message = str(exc)
    (Path(out) / f"rank{rank}.txt").write_text(message)


@pytest.mark.timeout(180)
def test_a_rank_that_cannot_see_the_run_directory_stops_every_rank(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_check_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    assert "another rank's check failed" in (tmp_path / "rank0.txt").read_text()
    assert "filesystem they share at the same path" in (tmp_path / "rank1.txt").read_text()
