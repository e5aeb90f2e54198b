"""Recipe format v1: loading, validation messages (key path, file, line), overrides."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import RECIPES, clear_and_blurred, naive_vs_expert

from kvision.errors import RecipeErrors
from kvision.recipe import check_recipe, dump_toml, load_recipe
from kvision.recipe.locate import key_lines

ROOT = Path(__file__).resolve().parents[1]

BASE = (
    textwrap.dedent("""\
    [experiment]
    name = "t"
    seed = 1

    [data]
    source = "builtin:fashion7k"
    image_size = [64, 64]
    """)
    + clear_and_blurred(2.0)
    + textwrap.dedent("""
    [models.net]
    arch = "lenet"
    """)
    + naive_vs_expert(1, 1, 2, ", optimizer = { learning_rate = 1e-4 }")
    + textwrap.dedent("""
    [training]
    optimizer = { name = "sgd", learning_rate = 0.01, momentum = 0.9 }
    batch_size = 16
    """)
)


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> list:
    recipe, errors = check_recipe(write(tmp_path, text), overrides)
    assert recipe is None and errors
    return errors


def test_valid_recipe_resolves_with_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE))
    assert recipe.experiment.seed == 1
    assert recipe.data.image_size == (64, 64)
    assert recipe.conditions["blurred"].blur.sigma == 2.0
    assert [a.name for a in recipe.arms] == ["naive", "expert"]
    assert recipe.evaluate.splits == ("train", "test")


def test_stage_override_deep_merges_training_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE))
    train = recipe.arms[1].stages[1].training  # resolved once, when the recipe was loaded
    assert train.optimizer.name == "sgd" and train.optimizer.momentum == 0.9
    assert train.optimizer.learning_rate == 1e-4
    assert train.batch_size == 16
    assert recipe.arms[1].stages[0].training.optimizer.learning_rate == 0.01
    assert recipe.arms[1].stages[1].overrides == {"optimizer": {"learning_rate": 1e-4}}


def test_the_resolved_recipe_keeps_each_stage_training(tmp_path):
    """recipe.toml holds a stage's overrides as written, so loading it again gives the same
    settings (the stage's sgd is not replaced by a default optimizer table)."""
    recipe = load_recipe(write(tmp_path, BASE))
    again = load_recipe(write(tmp_path, dump_toml(recipe), "resolved.toml"))
    assert again == recipe
    assert [s.training for s in again.arms[1].stages] == [s.training for s in recipe.arms[1].stages]


def test_unknown_key_did_you_mean_with_path_file_and_line(tmp_path):
    text = BASE.replace("batch_size = 16", "batch_sise = 16")
    (err,) = errors_of(tmp_path, text)
    assert err.key == "training.batch_sise"
    assert "Did you mean: 'batch_size'?" in str(err)
    assert err.line == text.splitlines().index("batch_sise = 16") + 1
    assert str(err).startswith(f"{tmp_path / 'r.toml'}:{err.line}")


def test_stage_condition_reference_is_checked(tmp_path):
    text = BASE.replace(
        '{ name = "pretrain", condition = "clear"', '{ name = "pretrain", condition = "claer"'
    )
    (err,) = errors_of(tmp_path, text)
    assert err.key == "arms[1].stages[0].condition"
    assert "condition 'claer' is not defined. Did you mean: 'clear'?" in str(err)
    assert err.line == next(i for i, line in enumerate(text.splitlines(), 1) if "claer" in line)


def test_wrong_type_and_bad_value_name_the_key(tmp_path):
    text = BASE.replace("seed = 1", 'seed = "one"').replace("batch_size = 16", "batch_size = 0")
    errors = errors_of(tmp_path, text)
    by_key = {e.key: str(e) for e in errors}
    assert "expected an integer, got a string 'one'" in by_key["experiment.seed"]
    assert "must be >= 1, got 0" in by_key["training.batch_size"]


def test_every_problem_is_reported_in_one_pass(tmp_path):
    text = (
        BASE.replace("epochs = 2", "epochs = -1")
        .replace("seed = 1", "seed = 1\nsed = 2")
        .replace("image_size = [64, 64]", "image_size = [64]")
    )
    keys = {e.key for e in errors_of(tmp_path, text)}
    assert keys == {"arms[1].stages[1].epochs", "experiment.sed", "data.image_size"}


def test_unknown_architecture_and_option(tmp_path):
    (err,) = errors_of(tmp_path, BASE.replace('arch = "lenet"', 'arch = "alexnet_sed"'))
    assert err.key == "models.net.arch" and "Did you mean: 'alexnet_seed'?" in str(err)
    (err,) = errors_of(tmp_path, BASE.replace('arch = "lenet"', 'arch = "lenet"\ndropuot = 0.3'))
    assert err.key == "models.net.dropuot" and "dropout" in str(err)


def test_optimizer_cross_field_rule(tmp_path):
    (err,) = errors_of(tmp_path, BASE.replace('name = "sgd"', 'name = "adam"'))
    assert err.key == "training.optimizer.momentum"
    assert "momentum applies to sgd and rmsprop" in str(err)


def test_overrides_set_any_key_with_validation(tmp_path):
    path = write(tmp_path, BASE)
    recipe = load_recipe(
        path,
        [
            "training.batch_size=64",
            "arms[0].stages[0].epochs=5",
            "data.source=builtin:fashion7k",
            "models.net.dropout=0.25",
        ],
    )
    assert recipe.training.batch_size == 64
    assert recipe.arms[0].stages[0].epochs == 5
    assert recipe.models["net"].options == {"dropout": 0.25}
    errors = check_recipe(path, ["training.batch_szie=64"])[1]
    assert errors[0].key == "training.batch_szie" and "Did you mean: 'batch_size'?" in str(
        errors[0]
    )
    errors = check_recipe(path, ["arms[5].stages[0].epochs=1"])[1]
    assert "index [5] is out of range" in str(errors[0])
    # a stray letter before an array's name is an unknown key, not an index out of range
    errors = check_recipe(path, ["oarms[0].stages[0].epochs=1"])[1]
    assert errors[0].key == "oarms" and "unknown key 'oarms'" in str(errors[0])
    assert "Did you mean: 'arms'?" in str(errors[0])
    errors = check_recipe(path, ["nonsense"])[1]
    assert "not of the form key=value" in str(errors[0])


def test_overrides_reach_quoted_keys_with_dots(tmp_path):
    path = ROOT / "recipes" / "function_sweep.toml"
    recipe = load_recipe(
        path,
        [
            'sweep.params."training.batch_size"=[4, 64]',
            'sweep.params."models.mlp.hidden"=[[8], [32, 32, 32]]',
        ],
    )
    assert recipe.sweep.params["training.batch_size"] == [4, 64]
    assert recipe.sweep.params["models.mlp.hidden"] == [[8], [32, 32, 32]]
    errors = check_recipe(path, ['sweep.params."training.batch_size=[4]'])[1]
    assert "is not a key path" in str(errors[0])


def test_toml_syntax_error_has_line(tmp_path):
    (err,) = errors_of(tmp_path, BASE.replace("seed = 1", "seed = = 1"))
    assert err.line == 3 and "not valid TOML" in str(err)


def test_missing_file(tmp_path):
    (err,) = errors_of_path(tmp_path / "nope.toml")
    assert "does not exist" in str(err)


def errors_of_path(path: Path) -> list:
    return check_recipe(path)[1]


def test_dump_round_trips(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE))
    again = load_recipe(write(tmp_path, dump_toml(recipe), "again.toml"))
    assert again == recipe


def test_key_lines_follow_inline_tables_and_array_tables():
    lines = key_lines(BASE)
    text = BASE.splitlines()
    assert (
        text[lines["arms[1].stages[1].optimizer.learning_rate"] - 1]
        .lstrip()
        .startswith('{ name = "train"')
    )
    assert text[lines["arms[1]"] - 1] == "[[arms]]"
    assert text[lines["conditions.blurred.blur.sigma"] - 1].startswith("blur")


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(recipe):
    load_recipe(recipe)


def test_cli_validate_bad_recipe_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, BASE.replace("batch_size = 16", "batch_sise = 16"))
    proc = subprocess.run(
        [sys.executable, "-m", "kvision", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "training.batch_sise" in proc.stderr and "Did you mean" in proc.stderr


def test_help_imports_no_keras_or_torch():
    code = (
        "import sys, kvision.cli\n"
        "kvision.cli.build_parser().format_help()\n"
        "print(sorted(m for m in ('keras', 'torch', 'cv2', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recipe_package_imports_no_heavy_modules():
    code = (
        "import sys, kvision.recipe\n"
        "print(sorted(m for m in ('keras', 'torch', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recipe_errors_collects(tmp_path):
    with pytest.raises(RecipeErrors) as info:
        load_recipe(
            write(tmp_path, BASE.replace('source = "builtin:fashion7k"', 'source = "bultin:x"'))
        )
    assert info.value.errors[0].key == "data.source"


@pytest.mark.parametrize("name", sorted(p.stem for p in RECIPES.glob("*.toml")))
def test_every_test_recipe_is_valid_and_takes_overrides(name, recipe):
    """tests/recipes/*.toml: each one validates as written, and the ``recipe`` fixture's
    overrides reach the file (through kvision's own override code)."""
    assert load_recipe(RECIPES / f"{name}.toml")
    changed = load_recipe(recipe(name, "experiment.seed=123", "training.batch_size=4"))
    assert (changed.experiment.seed, changed.training.batch_size) == (123, 4)
    with pytest.raises(RecipeErrors, match="oarms"):
        recipe(name, "oarms[0].name=x")  # a mistyped key is refused as `--set` refuses it
