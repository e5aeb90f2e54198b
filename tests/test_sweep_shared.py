"""One sweep shared by several workers through a database (`kvision sweep --storage URL`).

With a real PostgreSQL server (tests/pg_server.py) and with SQLite, workers race for the
queued budget; on the server (SQLite where none can run), three `kvision sweep` processes
share a 9-trial budget while one of them is killed in the middle of a trial, and the report
is rebuilt from the database; every bad input (no server, wrong password, no driver,
another recipe) is one paragraph, exit 2.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pg_server
import pytest

from kvision.cli import main
from kvision.runs import RunReader

RECIPE = textwrap.dedent("""\
    [experiment]
    name = "shared"
    seed = 5

    [data]
    source = "function:x**2 + 2*cos(x)"

    [data.function]
    domain = [-2.0, 3.0]
    train_points = 32
    val_points = 16
    test_points = 32
    noise = 0.3

    [models.mlp]
    arch = "mlp"
    hidden = [8, 8]
    activation = "sigmoid"

    [training]
    optimizer = { name = "adam", learning_rate = 0.01 }
    loss = "mse"
    batch_size = 8

    [[arms]]
    name = "fit"
    stages = [{ name = "fit", condition = "clear", epochs = 24 }]

    [evaluate]
    splits = ["test"]
    before = false

    [output]
    checkpoint_every = 3
    print_every = 1000
    save_models = false

    [insight]
    enabled = false

    [sweep]
    sampler = "random"
    trials = 9
    parallel = 1
    objective = "val_loss"
    seed = 1

    [sweep.params]
    "training.optimizer.learning_rate" = { low = 1e-3, high = 1e-1, log = true }
    """)


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sweeps.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path) -> str:
    """A fresh database: on the throw-away PostgreSQL server, or an SQLite file."""
    if request.param == "sqlite":
        return _sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def server_url(request, tmp_path) -> str:
    """The store of a sweep shared across machines: the throw-away PostgreSQL server, or an
    SQLite file where none can run. (The racing claims above run on both stores; what the
    three workers add, a killed worker's trial retried by another, is Optuna's on either.)"""
    if pg_server.missing_reason():
        return _sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_url")


def _recipe(tmp_path: Path, text: str = RECIPE) -> Path:
    path = tmp_path / "shared.toml"
    path.write_text(text)
    return path


def _study(url: str, name: str = "shared"):
    import optuna

    from kvision.sweep.storage import open_database

    return optuna.load_study(study_name=name, storage=open_database(url))


# -- the budget as a queue: claims race, none is lost or taken twice ------------------------
def _claimer(url: str, spec, raw: dict, start_at: float, out: str) -> None:
    """One worker: join (or create) the study at the same instant as the others, then claim
    until the queue is empty; writes the trial numbers it got."""
    from kvision.sweep.studies import SharedStudy

    time.sleep(max(0.0, start_at - time.time()))
    handle, _note = SharedStudy(url, "race").join(spec, raw, 24, "race.toml")
    got = []
    while (trial := handle.claim()) is not None:
        got.append(trial.number)
    Path(out).write_text(json.dumps(got))


@pytest.mark.slow  # worker processes racing, each importing the sweep stack: ~17 s per store
@pytest.mark.timeout(240)
def test_racing_workers_create_one_study_and_claim_each_queued_trial_once(url, tmp_path):
    from kvision.sweep.study import _prepare

    spec, _base, raw = _prepare(str(_recipe(tmp_path)), [])
    ctx = multiprocessing.get_context("spawn")  # no torch/Keras state carried into the workers
    start_at = time.time() + 8  # after every worker has imported Optuna and connected
    outs = [tmp_path / f"claims{i}.json" for i in range(4)]
    procs = [ctx.Process(target=_claimer, args=(url, spec, raw, start_at, str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    claims = [json.loads(o.read_text()) for o in outs]
    flat = [n for c in claims for n in c]
    assert sorted(flat) == list(range(24)), claims  # every queued trial once, none twice
    trials = _study(url, "race").get_trials()
    assert len(trials) == 24 and all(
        t.state.name == "RUNNING" for t in trials
    )  # none beyond the budget


# -- three sweep processes, one killed mid-trial -------------------------------------------
def _worker(recipe: Path, url: str, folder: Path) -> subprocess.Popen:
    log = open(folder.with_suffix(".log"), "ab")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kvision",
            "sweep",
            str(recipe),
            "--storage",
            url,
            "--sweep-dir",
            str(folder),
            "--heartbeat",
            "1",
            "--grace",
            "8",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _checkpointed_run(folder: Path) -> Path | None:
    found = sorted(folder.glob("trials/*/trials/*/checkpoints/latest.json"))
    return found[0].parents[3] if found else None


def _logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n" + p.read_text(errors="replace")[-2500:]
        for p in sorted(tmp_path.glob("w*.log"))
    )


@pytest.mark.slow(seconds=40)  # ten trial processes (torch + Keras each) over three workers
@pytest.mark.timeout(600)
def test_three_workers_share_the_budget_and_finish_a_killed_workers_trial(
    server_url, tmp_path, monkeypatch
):
    url = server_url
    recipe = _recipe(tmp_path)
    folders = [tmp_path / f"w{i}" for i in range(3)]
    started = time.monotonic()
    workers = [_worker(recipe, url, f) for f in folders]
    deadline = time.monotonic() + 300
    while (victim := _checkpointed_run(folders[0])) is None and time.monotonic() < deadline:
        assert workers[0].poll() is None, _logs(tmp_path)
        time.sleep(0.05)
    assert victim is not None, _logs(tmp_path)
    os.kill(RunReader(victim).meta()["pid"], signal.SIGSTOP)  # it cannot finish before the kill
    os.killpg(workers[0].pid, signal.SIGKILL)  # the machine dies: worker and its trial
    workers[0].wait()
    for w in workers[1:]:
        assert w.wait(timeout=400) == 0, _logs(tmp_path)
    seconds = time.monotonic() - started

    trials = _study(url).get_trials()
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE"] * 9 + ["FAIL"], (states, _logs(tmp_path))
    dead = next(t for t in trials if t.state.name == "FAIL")
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.state.name == "COMPLETE" and retry.params == dead.params
    assert retry.user_attrs["run_dir"] == str(victim) == dead.user_attrs["run_dir"]
    assert retry.user_attrs["worker"] != dead.user_attrs["worker"]  # another worker finished it
    killed = RunReader(victim)
    assert killed.status() == "finished"
    points = killed.of("run_resumed")[0]["resume_points"]
    assert min(p["global_epoch"] for p in points.values()) >= 3  # from its checkpoint, not epoch 0
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    dirs = [t.user_attrs["run_dir"] for t in complete]
    assert len(set(dirs)) == 9  # no trial ran twice
    for d in dirs:  # each run started once (the killed one resumed once), and its value is its own
        reader = RunReader(d)
        assert len(reader.of("run_started")) == 1 and reader.status() == "finished"
    for t in complete:
        best = min(e["metrics"]["val_loss"] for e in RunReader(t.user_attrs["run_dir"]).epochs())
        assert t.value == pytest.approx(best)
    per_worker = {}
    for t in complete:
        per_worker[t.user_attrs["worker"]] = per_worker.get(t.user_attrs["worker"], 0) + 1
    print(
        f"\n{url.split(':')[0]}: {len(trials)} trials in {seconds:.0f} s; complete per worker: "
        f"{sorted(per_worker.values(), reverse=True)}"
    )

    # each worker's sweep directory has the whole study's report; rebuilt from it again. The
    # folder holds the URL without its password (never written): libpq takes it from
    # PGPASSWORD, as a user's ~/.pgpass or environment would give it (docs/scale-out.md).
    monkeypatch.setenv("PGPASSWORD", pg_server.PASSWORD)
    assert main(["sweep", "report", str(folders[1])]) == 0
    assert len(json.loads((folders[1] / "sweep.json").read_text())["trials"]) == 10
    # the ranked report, rebuilt from the database alone
    out = tmp_path / "report"
    assert main(["sweep", "report", url, "--out", str(out)]) == 0
    summary = json.loads((out / "sweep.json").read_text())
    ranks = [r["rank"] for r in summary["trials"] if r["state"] == "complete"]
    assert ranks == list(range(1, 10))
    assert summary["best"]["objective"] == min(t.value for t in complete)
    failed = next(r for r in summary["trials"] if r["state"] == "failed")
    assert f"retried as trial {retry.number:03d}" in failed["error"]
    table = (out / "sweep.md").read_text()
    assert (out / "sweep.png").stat().st_size > 1000 and "| 1 |" in table
    assert "9 of 9 trials done" in table  # the retried trial holds one place of the budget


# -- bad input: one paragraph, exit 2, nothing of the study changed --------------------------
def _sweep_fails(capsys, recipe: Path, url: str, folder: Path) -> str:
    assert main(["sweep", str(recipe), "--storage", url, "--sweep-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("kvision: error: ")
    assert not folder.exists()  # nothing written here either
    return err


def test_no_server_at_the_url(capsys, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _sweep_fails(
        capsys,
        _recipe(tmp_path),
        f"postgresql://kvision:secret@127.0.0.1:{port}/x",
        tmp_path / "sw",
    )
    assert "Cannot reach the sweep database" in err and f"127.0.0.1:{port}" in err
    assert "secret" not in err


def test_wrong_password(capsys, tmp_path, postgres):
    err = _sweep_fails(
        capsys, _recipe(tmp_path), postgres.url("postgres", password="not-it"), tmp_path / "sw"
    )
    assert "refused the user or password" in err and "not-it" not in err


def test_missing_driver(capsys, tmp_path):
    err = _sweep_fails(
        capsys, _recipe(tmp_path), "postgresql+pg8000://u@127.0.0.1/x", tmp_path / "sw"
    )
    assert "needs the Python database driver 'pg8000'" in err


def test_not_a_url(capsys, tmp_path):
    err = _sweep_fails(capsys, _recipe(tmp_path), str(tmp_path / "db.sqlite"), tmp_path / "sw")
    assert "is not a database URL" in err


def test_a_study_of_another_recipe_is_refused_and_left_as_it_was(url, capsys, tmp_path):
    from kvision.sweep.studies import SharedStudy
    from kvision.sweep.study import _prepare

    spec, _base, raw = _prepare(str(_recipe(tmp_path)), [])
    SharedStudy(url, "shared").join(spec, raw, 9, "shared.toml")
    before = _study(url)
    snapshot = (before.user_attrs, [(t.number, t.state.name) for t in before.get_trials()])
    other = tmp_path / "other"
    other.mkdir()
    changed = _recipe(other, RECIPE.replace("hidden = [8, 8]", "hidden = [4, 4]"))
    err = _sweep_fails(capsys, changed, url, tmp_path / "sw")
    assert "differs from the one the study 'shared'" in err
    after = _study(url)
    assert (after.user_attrs, [(t.number, t.state.name) for t in after.get_trials()]) == snapshot


def test_heartbeat_needs_a_database(capsys, tmp_path):
    assert main(["sweep", str(_recipe(tmp_path)), "--heartbeat", "5"]) == 2
    assert "--heartbeat and --grace need --storage URL" in capsys.readouterr().err


def test_resume_takes_over_a_run_of_a_dead_machine_only_with_force(tmp_path):
    """A retry resumes a run whose writer was on another machine: its liveness cannot be
    checked from here, so plain --resume refuses and --force (the heartbeat said it died) goes."""
    from kvision.errors import KvisionError
    from kvision.train.runner import resume_run, run_recipe

    recipe = _recipe(tmp_path, RECIPE.split("[sweep]")[0].replace("epochs = 24", "epochs = 2"))
    run = run_recipe(str(recipe), runs_dir=str(tmp_path / "runs")).run_dir
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "host": "node-that-died"}))
    lines = (run / "events.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["event"] != "run_finished"]
    (run / "events.jsonl").write_text("\n".join(kept) + "\n")  # no last word: "running"
    assert RunReader(run).status() == "running"
    with pytest.raises(KvisionError, match="on node-that-died.*resume with --force"):
        resume_run(str(run))
    assert resume_run(str(run), force=True).status == "finished"


def test_a_result_for_a_trial_the_study_gave_up_is_kept_out_of_it(tmp_path):
    """A worker so slow that its heartbeat lapsed finds its trial failed (and retried
    elsewhere) when it ends: the study keeps the retry's result, the worker says so."""
    import io

    from optuna.trial import TrialState

    from kvision.sweep.studies import SharedStudy
    from kvision.sweep.study import _Job, _prepare, _tell
    from kvision.train.console import Console

    spec, _base, raw = _prepare(str(_recipe(tmp_path)), [])
    url = f"sqlite:///{tmp_path / 'gave-up.db'}"
    handle, _note = SharedStudy(url, "shared").join(spec, raw, 2, "shared.toml")
    trial = handle.claim()
    trial_id = handle.trial_id(trial.number)
    handle.storage.set_trial_state_values(trial_id, TrialState.FAIL)  # as fail_stale_trials does
    out = io.StringIO()
    _tell(
        handle,
        _Job(trial.number, trial_id, tmp_path, {}),
        Console(out, tty=False),
        value=0.5,
        objective="val_loss",
    )
    assert "had been given up by the study" in out.getvalue()
    assert _study(url).trials[trial.number].state.name == "FAIL"


def test_a_study_not_made_by_kvision_is_refused(capsys, tmp_path, monkeypatch):
    import optuna

    from kvision.sweep import studies

    # kvision's own creator records its recipe at once; the refusal, not the wait, is tested
    monkeypatch.setattr(studies, "RECIPE_WAIT_S", 0.5)

    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="shared", storage=url).optimize(
        lambda t: t.suggest_float("x", 0, 1), 2
    )
    capsys.readouterr()  # Optuna's own log lines
    err = _sweep_fails(capsys, _recipe(tmp_path), url, tmp_path / "sw")
    assert "is not a kvision sweep" in err
    assert len(_study(url).trials) == 2  # left as it was
