"""Every shipped recipe's documented small offline command really runs (as CI does)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from kvision.recipe import load_recipe
from kvision.runs import RunReader
from kvision.train.console import Console
from kvision.train.runner import run_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
MARKER = "Small and offline"


def documented_overrides(recipe: Path) -> list[str]:
    """The --set values of the 'Small and offline' command in the recipe's header comment."""
    lines = recipe.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if MARKER in line)
    command = []
    for line in lines[start + 1 :]:
        text = line.lstrip("#").strip()
        if not line.startswith("#") or not text:
            break
        command.append(text.rstrip("\\"))
    words = shlex.split(" ".join(command))
    return [words[i + 1] for i, w in enumerate(words) if w == "--set"]


OFFLINE = sorted(p for p in RECIPES.glob("*.toml") if MARKER in p.read_text())


def test_recipes_needing_data_document_an_offline_command():
    names = {p.name for p in OFFLINE}
    assert {"cats_dogs_transfer.toml", "cifar10_resnet.toml", "marine_transfer.toml"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("recipe", OFFLINE, ids=lambda p: p.stem)
def test_documented_offline_command_runs(recipe, tmp_path):
    overrides = documented_overrides(recipe) + ["insight.enabled=false", "evaluate.max_images=100"]
    result = run_recipe(
        str(recipe),
        overrides,
        runs_dir=str(tmp_path),
        console=Console(open(os.devnull, "w"), tty=False),  # noqa: SIM115
    )
    assert result.status == "finished", result.message
    reader = RunReader(result.run_dir)
    assert reader.trials() and len(reader.of("trial_finished")) == len(reader.trials())
    recipe_ = load_recipe(recipe, overrides)
    if recipe_.experiment.repeats > 1:  # the paired differences the recipe asks for
        report = (result.run_dir / "report.md").read_text()
        for arm in recipe_.arms:
            for other in arm.versus:
                for model in recipe_.models:
                    assert f"| {model} | {arm.name} − {other} |" in report, (model, arm.name)
