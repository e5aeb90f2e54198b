"""Recipes and helpers the test files share (tests/ is on sys.path: ``from conftest import ...``),
and a throw-away PostgreSQL server (see tests/pg_server.py).

- ``tests/recipes/*.toml``: the test recipes, one file each; the ``recipe`` fixture writes one
  with ``--set``-style overrides applied by kvision's own override code.
- ``kvision_cli`` / the ``cli`` fixture: the command line in this process; ``run_kvision``: in
  a child process, for what only a process shows (signals, umask, the console script).
- ``tiny_run``: one finished run of ``tiny.toml`` for the whole session, for tests that only
  read a finished run.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pg_server
import pytest

#: The test recipes (tests/recipes/NAME.toml).
RECIPES = Path(__file__).parent / "recipes"

# Runs draw their figures in the training process, as one process is simpler to reason
# about in a test; tests/test_render_worker.py runs the drawing worker (the default) itself.
os.environ.setdefault("KVISION_RENDER", "inline")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (-n 2) every worker and each run it starts computes in one intra-op
    # thread: two workers of two threads each kept four threads on two cores and cost the
    # suite about a tenth more time (docs/architecture.md, "Tests"). Set before torch loads
    # OpenMP; the children inherit it, so a run in a child process and its reference in the
    # worker sum in the same order.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

#: ``[experiment]`` "tiny" and 6 images per class of the built-in data: seconds per epoch.
TINY_DATA = textwrap.dedent("""\
    [experiment]
    name = "tiny"
    seed = 7

    [data]
    source = "builtin:fashion7k"
    limit_per_class = 6
    val_fraction = 0.25
    """)


def clear_and_blurred(sigma: float) -> str:
    """``[conditions.clear]`` and a Gaussian ``[conditions.blurred]``."""
    return textwrap.dedent(f"""
        [conditions.clear]

        [conditions.blurred]
        blur = {{ kind = "gaussian", sigma = {sigma} }}
        """)


def naive_vs_expert(naive: int, pretrain: int, train: int, train_extra: str = "") -> str:
    """Report 000's two arms: ``naive`` (blurred only) and ``expert`` (clear, then blurred),
    with these epochs; ``train_extra`` adds keys to the expert's last stage."""
    return textwrap.dedent(f"""
        [[arms]]
        name = "naive"
        stages = [{{ name = "train", condition = "blurred", epochs = {naive} }}]

        [[arms]]
        name = "expert"
        stages = [
          {{ name = "pretrain", condition = "clear", epochs = {pretrain} }},
          {{ name = "train", condition = "blurred", epochs = {train}{train_extra} }},
        ]
        """)


def write_recipe(folder: Path, text: str, name: str = "recipe.toml") -> Path:
    """``text`` written to ``folder/name``."""
    path = folder / name
    path.write_text(text)
    return path


def recipe_text(name: str, *overrides: str) -> str:
    """tests/recipes/``name``.toml with ``overrides`` (``key.path=value``, as ``--set`` takes
    them) applied by kvision's override code, as TOML text."""
    import tomli_w

    from kvision.recipe.load import apply_overrides, parse_toml

    path = RECIPES / f"{name}.toml"
    raw = parse_toml(path.read_text(), str(path))
    return tomli_w.dumps(apply_overrides(raw, overrides, str(path)))


@pytest.fixture
def recipe(tmp_path: Path):
    """``recipe(name, *overrides, folder=tmp_path)``: the test recipe written to
    ``folder/name.toml`` with the overrides applied; returns its path."""

    def make(name: str, *overrides: str, folder: Path | None = None) -> Path:
        return write_recipe(folder or tmp_path, recipe_text(name, *overrides), f"{name}.toml")

    return make


def kvision_cli(
    *args: str | os.PathLike, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``kvision ARGS`` in this process: ``kvision.cli.main`` (what the console script calls)
    with stdout and stderr captured, as a child would return them. A user mistake must come
    back as an exit code (argparse's included); anything else raises here, traceback and all.
    ``cwd`` is the working folder during the call; ``env`` is added to the environment."""
    from kvision.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(mock.patch.dict(os.environ, env or {}))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(["kvision", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    """The in-process command line: ``cli("ls", "--runs-dir", path)`` (see kvision_cli)."""
    return kvision_cli


@pytest.fixture(autouse=True)
def _torch_threads_given_back():
    """A test that changes torch's intra-op thread count sets it back: the tests after it in
    this process, and the child runs they compare with (one thread under pytest-xdist),
    would sum in another order."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    if before is not None:
        assert sys.modules["torch"].get_num_threads() == before, "torch's thread count changed"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One finished run of tests/recipes/tiny.toml, shared by every test that only reads it
    (show, ls, export, the run directory contract); a test that writes into a run copies it."""
    from kvision.train.runner import run_recipe

    folder = tmp_path_factory.mktemp("tiny_run")
    path = write_recipe(folder, recipe_text("tiny"), "tiny.toml")
    result = run_recipe(str(path), [], runs_dir=str(folder / "runs"), console=quiet())
    assert result.status == "finished" and result.exit_code == 0, result.message
    return result.run_dir


def run_kvision(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m kvision ARGS`` in a child process, where the process is the behaviour
    (exit code, stderr, no traceback); ``env`` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "kvision", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def pythons_at_once(
    children: dict[str, tuple[list[str], dict | None]], timeout: float = 300
) -> dict[str, subprocess.CompletedProcess]:
    """``{name: (python arguments, environment or None)}`` run in fresh interpreters all at
    once, each checked for exit code 0. Import probes spend seconds importing Keras and torch
    on one core each: on two cores, two run in the time of one."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env if env is not None else os.environ.copy(),
        )
        for name, (args, env) in children.items()
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{name}: {err[-3000:]}"
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def quiet():
    """A console that prints nowhere (the runner's and the sweep's output)."""
    from kvision.train.console import Console

    return Console(open(os.devnull, "w"), tty=False)  # noqa: SIM115


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the test session; skipped with the reason where none can run."""
    reason = pg_server.missing_reason()
    if reason:
        pytest.skip(reason)
    server = pg_server.start_server()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres) -> str:
    """An SQLAlchemy URL of a fresh, empty database on the session's server."""
    return postgres.url(postgres.create_database())


def pytest_configure(config):
    # The quick part (-m "not slow") leaves out the 130x40 snapshot tests. syrupy matches a
    # snapshot file to a test by its name without the parameters, so it takes their files for
    # unused snapshots: in a marker-filtered run that is reported, not a failure, and updating
    # snapshots (which would delete them) is refused. The whole suite still fails on a
    # snapshot file that no test uses.
    if config.option.markexpr:
        if getattr(config.option, "update_snapshots", False):
            raise pytest.UsageError(
                "--snapshot-update with -m would delete the snapshots of the tests the marker "
                "leaves out; update them with the whole suite: python -m pytest "
                "tests/test_tui_snapshots.py --snapshot-update"
            )
        config.option.warn_unused_snapshots = True


# -- numerically sensitive tests ---------------------------------------------------------
# A test that compares floats across code paths takes the ``numeric_seed`` fixture and seeds
# its weights and data from it. The suite runs seed 0; `pytest -m numeric --numeric-repeats 30`
# (in .ci/run) runs each such test under 30 different seeds, so a tolerance that only holds
# for some random draws fails in CI instead of one run in four for someone else's change.
def pytest_addoption(parser):
    parser.addoption(
        "--numeric-repeats",
        type=int,
        default=1,
        help="run each test taking the numeric_seed fixture under this many seeds (0..N-1)",
    )


def pytest_generate_tests(metafunc):
    if "numeric_seed" in metafunc.fixturenames:
        repeats = metafunc.config.getoption("numeric_repeats")
        # A test that trains for many steps marks @pytest.mark.numeric_cap(N): at most N
        # seeds, so the repeated pass stays a few minutes.
        cap = metafunc.definition.get_closest_marker("numeric_cap")
        if cap is not None:
            repeats = min(repeats, cap.args[0])
        metafunc.parametrize("numeric_seed", range(repeats), ids=lambda s: f"seed{s}")


def pytest_collection_modifyitems(items):
    for item in items:
        if "numeric_seed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.numeric)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Under pytest-xdist (-n 2 --dist worksteal) the long tests go first, longest first,
        # so the two workers share them and the end of the run is short tests, not one worker
        # alone with a minute-long one. Every worker sorts alike: xdist schedules by the order
        # the workers collected, which must be the same. A serial run keeps the file order.
        items.sort(key=slow_seconds, reverse=True)  # stable: file order among equals


def slow_seconds(item: pytest.Item) -> float:
    """What a slow test declares it takes (``@pytest.mark.slow(seconds=N)``, given for the
    tests of about 15 s or more alone on two cores), 0 for the other slow tests and -1 for the
    quick ones."""
    mark = item.get_closest_marker("slow")
    return -1.0 if mark is None else float(mark.kwargs.get("seconds", 0))
