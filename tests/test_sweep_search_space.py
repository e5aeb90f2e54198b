"""The [sweep] section and its search space: validation against the recipe, grids, sampling."""

from __future__ import annotations

import argparse
import textwrap
import tomllib

import pytest

from kvision.errors import RecipeError, RecipeErrors
from kvision.recipe.schema_sweep import RangeSpec
from kvision.sweep.search_space import (
    budget,
    check_space,
    grid,
    override,
    split_sweep,
    suggest,
    toml_value,
)

BASE = textwrap.dedent("""\
    [experiment]
    name = "tiny"

    [data]
    source = "builtin:fashion7k"
    limit_per_class = 6

    [models.net]
    arch = "lenet"

    [[arms]]
    name = "train"
    stages = [{ name = "train", condition = "clear", epochs = 1 }]

    [training]
    optimizer = { name = "sgd", momentum = 0.9 }
    """)


def load(sweep: str) -> tuple:
    text = BASE + textwrap.dedent(sweep)
    return (*split_sweep(tomllib.loads(text), file="r.toml", text=text), text)


def check(sweep: str) -> None:
    spec, base, text = load(sweep)
    check_space(spec, base, file="r.toml", text=text)


def problems(sweep: str) -> list[str]:
    with pytest.raises(RecipeErrors) as info:
        check(sweep)
    return [str(e) for e in info.value.errors]


def test_a_valid_sweep_passes_and_ranges_know_ints_from_floats():
    spec, _base, _text = load("""
        [sweep]
        objective = "test.clear.accuracy"
        [sweep.params]
        "training.optimizer.learning_rate" = { low = 1e-4, high = 1e-2, log = true }
        "training.batch_size" = { low = 16, high = 64, step = 16 }
        "models.net.dropout" = [0.0, 0.5]
        """)
    check_space(spec, _base, file="r.toml", text=_text)
    assert not spec.spaces["training.optimizer.learning_rate"].is_int
    assert spec.spaces["training.batch_size"].is_int
    assert spec.maximize and budget(spec) == 20


def test_a_sweep_over_a_key_that_does_not_exist_names_the_key_path():
    found = problems("""
        [sweep.params]
        "training.optimzer.learning_rate" = [1e-3, 1e-2]
        """)
    assert len(found) == 1
    assert "key 'sweep.params.training.optimzer.learning_rate'" in found[0]
    assert "unknown key 'optimzer' in [training]. Did you mean: 'optimizer'?" in found[0]
    assert "r.toml:" in found[0]  # located in the file


def test_a_value_the_key_does_not_accept_is_rejected_before_any_trial():
    found = problems("""
        [sweep.params]
        "training.batch_size" = [32, 0]
        "models.net.norm" = ["lrn"]
        """)
    assert any("sweeping 'training.batch_size' to 0" in p and "must be >= 1" in p for p in found)
    assert any("Unknown option 'norm' for model architecture 'lenet'" in p for p in found)


def test_bad_objective_and_grid_without_step_are_recipe_errors():
    with pytest.raises(RecipeErrors) as info:
        load("""
            [sweep]
            sampler = "grid"
            objective = "test.accuracy"
            [sweep.params]
            "training.optimizer.learning_rate" = { low = 1e-4, high = 1e-2 }
            """)
    text = "\n".join(str(e) for e in info.value.errors)
    assert "key 'sweep.objective'" in text and "SPLIT.CONDITION.METRIC" in text
    assert "a grid sweep needs choices or a range with a step" in text


def test_a_recipe_without_sweep_says_what_to_add():
    with pytest.raises(RecipeError, match=r"no \[sweep\] section"):
        split_sweep(tomllib.loads(BASE), file="r.toml")


def test_grid_is_every_combination_in_order_and_caps_the_budget():
    spec, _base, _text = load("""
        [sweep]
        sampler = "grid"
        trials = 50
        [sweep.params]
        "training.optimizer.name" = ["sgd", "rmsprop"]
        "training.batch_size" = { low = 16, high = 48, step = 16 }
        """)
    combos = grid(spec)
    assert combos[:2] == [
        {"training.optimizer.name": "sgd", "training.batch_size": 16},
        {"training.optimizer.name": "sgd", "training.batch_size": 32},
    ]
    assert len(combos) == 6 and budget(spec) == 6


def test_overrides_are_toml_that_the_recipe_loader_reads_back():
    assert override("data.image_size", [64, 64]) == "data.image_size=[64, 64]"
    assert (
        toml_value("adam") == '"adam"'
        and toml_value(1e-5) == "1e-05"
        and toml_value(True) == "true"
    )
    assert tomllib.loads(f"v = {toml_value({'kind': 'gaussian', 'sigma': 2.5})}")["v"] == {
        "kind": "gaussian",
        "sigma": 2.5,
    }


def test_optuna_suggestions_stay_inside_the_space():
    import optuna

    spec, _base, _text = load("""
        [sweep.params]
        "training.optimizer.learning_rate" = { low = 1e-4, high = 1e-2, log = true }
        "training.batch_size" = { low = 16, high = 64, step = 16 }
        "data.image_size" = [[28, 28], [32, 32]]
        """)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        values = suggest(study.ask(), spec)
        assert 1e-4 <= values["training.optimizer.learning_rate"] <= 1e-2
        assert values["training.batch_size"] in (16, 32, 48, 64)
        assert values["data.image_size"] in ([28, 28], [32, 32])  # arrays come back as arrays


def test_range_rules():
    from kvision.recipe.spec import INVALID, Context, parse

    ctx = Context()
    assert parse(RangeSpec, {"low": 0, "high": 1, "log": True}, ctx, "r") is not INVALID
    assert [e.key for e in ctx.errors] == ["r.low"]


def test_a_misspelt_range_key_is_named_with_its_path():
    with pytest.raises(RecipeErrors) as info:
        load("""
            [sweep.params]
            "training.batch_size" = { low = 16, hgh = 64 }
            "training.optimizer.name" = "adam"
            """)
    text = "\n".join(str(e) for e in info.value.errors)
    assert "key 'sweep.params.training.batch_size.hgh': unknown key 'hgh'" in text
    assert "Did you mean: 'high'?" in text
    assert "key 'sweep.params.training.optimizer.name': expected choices (an array" in text


def test_sweep_command_registers_its_options():
    from kvision.sweep.commands import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["sweep", "r.toml", "--set", "a=1", "--parallel", "2", "--trials", "5"]
    )
    assert (args.recipe, args.overrides, args.parallel, args.trials) == ("r.toml", ["a=1"], 2, 5)
    assert parser.parse_args(["sweep", "--resume", "d"]).resume == "d"


def test_kvision_sweep_refuses_a_bad_key_with_exit_2_and_starts_nothing(tmp_path, capsys):
    from kvision.cli import main

    recipe = tmp_path / "r.toml"
    recipe.write_text(BASE + '[sweep.params]\n"training.optimizer.learning_rat" = [1e-3]\n')
    assert main(["sweep", str(recipe), "--sweep-dir", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert "key 'sweep.params.training.optimizer.learning_rat'" in err
    assert "Did you mean: 'learning_rate'?" in err
    assert not (tmp_path / "sw").exists()
