"""Recipes and helpers the test files share (tests/ is on sys.path: ``from conftest import ...``),
and a throw-away PostgreSQL server (see tests/pg_server.py).

The pieces are TOML text, so each test file still shows the recipe it runs as one string.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pg_server
import pytest

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
