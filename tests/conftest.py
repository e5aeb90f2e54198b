"""Recipes and helpers the test files share (tests/ is on sys.path: ``from conftest import ...``),
and a throw-away PostgreSQL server (see tests/pg_server.py).

The pieces are TOML text, so each test file still shows the recipe it runs as one string.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pg_server
import pytest

# Runs draw their figures in the training process, as one process is simpler to reason
# about in a test; tests/test_render_worker.py runs the drawing worker (the default) itself.
os.environ.setdefault("KVISION_RENDER", "inline")

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
