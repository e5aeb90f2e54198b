"""Report 002's function fitting: formulas, the function: source, regression recipes and runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import quiet

from kvision.errors import RecipeError
from kvision.recipe import check_recipe, load_recipe
from kvision.recipe.formula import FormulaError, evaluate_formula, parse_formula
from kvision.runs import RunReader
from kvision.train.runner import resume_run, run_recipe

ROOT = Path(__file__).resolve().parents[1]

FIT = textwrap.dedent("""\
    [experiment]
    name = "fit"
    seed = 3

    [data]
    source = "function:x**2 + 2*cos(x) + 2/exp(x)"

    [data.function]
    domain = [-2.0, 3.0]
    train_points = 64
    val_points = 32
    test_points = 50
    noise = 0.1

    [models.mlp]
    arch = "mlp"

    [training]
    optimizer = { name = "adam", learning_rate = 0.05 }
    batch_size = 16

    [[arms]]
    name = "short"
    stages = [{ name = "fit", condition = "clear", epochs = 2 }]

    [[arms]]
    name = "long"
    stages = [{ name = "fit", condition = "clear", epochs = 40, loss = "huber" }]

    [evaluate]
    splits = ["train", "test"]
    before = false

    [output]
    checkpoint_every = 5
    print_every = 10
    """)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fit.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> dict[str, str]:
    recipe, errors = check_recipe(write(tmp_path, text))
    assert recipe is None and errors
    return {e.key: str(e) for e in errors}


# -- formulas -----------------------------------------------------------------------------
def test_formula_evaluates_like_numpy():
    x = np.linspace(-2, 3, 11)
    got = evaluate_formula("x**2 + 2*cos(x) + 2/exp(x) - pi % e + abs(-x)", x)
    want = x**2 + 2 * np.cos(x) + 2 / np.exp(x) - np.pi % np.e + np.abs(-x)
    np.testing.assert_allclose(got, want)
    assert evaluate_formula("0*x + 3", x).shape == x.shape


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("__import__('os').system('true')", "unknown function '__import__"),
        ("x.real", "is not allowed"),
        ("sin(x) + y", "unknown name 'y'"),
        ("(lambda: 1)()", "unknown function"),
        ("'a' * x", "is not a number"),
        ("np.sin(x)", "unknown function 'np.sin'"),
        ("coss(x)", "Did you mean: 'cos'?"),
        ("exp(x, 2)", "exactly one argument"),
        ("2 + 3", "does not use the variable x"),
        ("x +* 2", "is not a formula"),
    ],
)
def test_formula_rejects_anything_but_arithmetic_in_x(text, says):
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    assert says in str(info.value)


# -- recipes ------------------------------------------------------------------------------
def test_function_recipe_is_a_regression(tmp_path):
    recipe = load_recipe(write(tmp_path, FIT))
    assert recipe.task == "regression" and recipe.data.function.train_points == 64
    image = load_recipe(ROOT / "recipes" / "naive_vs_expert.toml")
    assert image.task == "classification"


def test_bad_formula_is_located_at_data_source(tmp_path):
    text = FIT.replace("2/exp(x)", "2/exq(x)")
    found = problems(tmp_path, text)
    assert "Did you mean: 'exp'?" in found["data.source"]
    line = text.splitlines().index('source = "function:x**2 + 2*cos(x) + 2/exq(x)"') + 1
    assert f"fit.toml:{line}" in found["data.source"]


def test_task_mismatches_are_reported(tmp_path):
    # Architectures are checked once the recipe's own structure is valid.
    found = problems(tmp_path, FIT.replace('arch = "mlp"', 'arch = "lenet"'))
    assert "does not fit this regression recipe" in found["models.mlp.arch"]
    text = (
        FIT.replace('loss = "huber"', 'loss = "cross_entropy"')
        .replace(
            "[models.mlp]",
            '[conditions.clear]\nblur = { kind = "gaussian", sigma = 1.0 }\n\n[models.mlp]',
        )
        .replace("[data.function]", "image_size = [32, 32]\n\n[data.function]")
    )
    found = problems(tmp_path, text)
    assert (
        "loss 'cross_entropy' does not fit a regression recipe" in found["arms[1].stages[0].loss"]
    )
    assert "blur applies to images" in found["conditions.clear.blur"]
    assert "applies to image sources" in found["data.image_size"]


def test_regression_keys_on_an_image_recipe_are_reported(tmp_path):
    base = (ROOT / "recipes" / "naive_vs_expert.toml").read_text()
    found = problems(tmp_path, base.replace('arch = "alexnet_seed"', 'arch = "mlp"', 1))
    assert "does not fit this classification recipe" in found["models.alexnet.arch"]
    found = problems(tmp_path, base + "\n[data.function]\nnoise = 0.2\n")
    assert "applies to function: sources only" in found["data.function"]
    found = problems(tmp_path, base.replace('loss = "cross_entropy"', 'loss = "mse"'))
    assert "loss 'mse' does not fit a classification recipe" in found["training.loss"]


def test_function_domain_must_be_ordered(tmp_path):
    found = problems(tmp_path, FIT.replace("domain = [-2.0, 3.0]", "domain = [3.0, -2.0]"))
    assert "low < high" in found["data.function.domain"]


# -- data ---------------------------------------------------------------------------------
def test_function_dataset_is_seeded_and_tests_against_the_truth(tmp_path):
    from kvision.data import load_dataset

    recipe = load_recipe(write(tmp_path, FIT))
    a, b = (load_dataset(recipe.data, 3) for _ in range(2))
    other = load_dataset(recipe.data, 4)
    train, test = a.splits["train"], a.splits["test"]
    assert train.images.shape == (64, 1) and train.images.dtype == np.float32
    assert train.labels.dtype == np.float32 and len(a.splits["val"]) == 32
    np.testing.assert_array_equal(train.images, b.splits["train"].images)
    assert not np.array_equal(train.images, other.splits["train"].images)
    x = test.images[:, 0].astype(np.float64)
    np.testing.assert_allclose(x, np.linspace(-2, 3, 50), rtol=1e-6)
    np.testing.assert_allclose(test.labels, x**2 + 2 * np.cos(x) + 2 / np.exp(x), rtol=1e-5)
    noise = train.labels - evaluate_formula("x**2 + 2*cos(x) + 2/exp(x)", train.images[:, 0])
    assert 0.05 < float(np.std(noise)) < 0.2  # noise = 0.1 on train targets only


def test_formula_not_finite_in_domain_is_a_recipe_error(tmp_path):
    from kvision.data import load_dataset

    recipe = load_recipe(write(tmp_path, FIT.replace("2/exp(x)", "log(x)")))
    with pytest.raises(RecipeError, match="not finite at x = "):
        load_dataset(recipe.data, 3)


# -- runs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fit_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fit")
    result = run_recipe(str(write(tmp, FIT)), [], runs_dir=str(tmp / "runs"), console=quiet())
    assert result.status == "finished", result.message
    return result.run_dir


def test_fit_run_learns_the_curve_and_reports_regression_metrics(fit_run):
    reader = RunReader(fit_run)
    final = {e["trial"]: e for e in reader.evaluations()}
    assert set(final) == {"mlp-short", "mlp-long"}
    for e in final.values():
        assert e["metric"] == "r2" and set(e["scores"]["clear"]) == {"train", "test"}
        cell = e["scores"]["clear"]["test"]
        assert (
            e["matrix"]["clear"]["test"] == cell["r2"] and e["loss"]["clear"]["test"] == cell["mse"]
        )
    # 40 epochs fit the curve far better than 2 (R^2 near 1 against the noise-free truth).
    assert final["mlp-long"]["matrix"]["clear"]["test"] > 0.9
    assert (
        final["mlp-long"]["loss"]["clear"]["test"] < final["mlp-short"]["loss"]["clear"]["test"] / 5
    )
    epoch = reader.epochs("mlp-long")[-1]["metrics"]
    assert {"loss", "val_loss", "mae", "val_mae"} <= set(epoch) and "accuracy" not in epoch


def test_fit_run_writes_fit_curves_plots_and_report(fit_run):
    fit = json.loads((fit_run / "trials" / "mlp-long" / "fit.json").read_text())
    x, truth, fitted = (np.asarray(fit[k]) for k in ("x", "truth", "fitted"))
    np.testing.assert_allclose(truth, x**2 + 2 * np.cos(x) + 2 / np.exp(x), rtol=1e-9)
    assert fit["mse_vs_truth"] == pytest.approx(float(np.mean((fitted - truth) ** 2)))
    for name in ("mlp-long_fit.png", "mlp-short_fit.png", "comparison_fit.png"):
        assert (fit_run / "images" / "fit" / name).stat().st_size > 1000
    assert (fit_run / "images" / "curves" / "mlp-long_loss-mae.png").exists()
    report = (fit_run / "report.md").read_text()
    assert (
        "## Final R²" in report
        and "## Final fit errors" in report
        and "| MSE | MAE | R² |" in report
    )


def test_show_prints_the_reports_regression_tables(fit_run, capsys):
    from kvision.cli import main

    assert main(["show", str(fit_run)]) == 0
    shown = capsys.readouterr().out
    assert "Final R² (test: against the noise-free truth)" in shown
    assert "Final fit errors" in shown and "R² at each checkpoint" in shown
    assert "accuracy" not in shown.lower()


def test_fit_model_exports_and_loads_safely(fit_run):
    from kvision.models import load_model

    model = load_model(fit_run / "trials" / "mlp-long" / "model.keras")
    fit = json.loads((fit_run / "trials" / "mlp-long" / "fit.json").read_text())
    x = np.asarray(fit["x"][:5], dtype=np.float32)[:, None]
    np.testing.assert_allclose(model.predict(x, verbose=0).ravel(), fit["fitted"][:5], rtol=1e-4)


@pytest.mark.slow(seconds=15)
def test_killed_fit_run_resumes_to_the_uninterrupted_result(tmp_path):
    """kill -9 in the middle of the long arm, resume, compare with an uninterrupted run."""
    import subprocess
    import sys

    from test_runner import epoch_events, final_metrics, wait_for

    recipe = write(tmp_path, FIT)
    longer = ["arms[1].stages[0].epochs=300"]
    reference = run_recipe(str(recipe), longer, runs_dir=str(tmp_path / "ref"), console=quiet())
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kvision",
            "run",
            str(recipe),
            "--run-dir",
            str(run_dir),
            "--set",
            longer[0],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: epoch_events(run_dir) >= 60)  # mlp-long, past a few checkpoints
    proc.kill()
    proc.wait(timeout=60)
    result = resume_run(str(run_dir), console=quiet())
    assert result.status == "finished", result.message
    resumed = RunReader(run_dir)
    assert resumed.of("run_resumed")[0]["resume_points"]["mlp-long"]["global_epoch"] % 5 == 0
    assert final_metrics(run_dir) == final_metrics(reference.run_dir)
    assert (
        resumed.evaluations()[-1]["scores"]
        == RunReader(reference.run_dir).evaluations()[-1]["scores"]
    )


def test_sweep_objectives_of_a_fit_run(fit_run):
    from kvision.recipe.schema_sweep import SweepSection
    from kvision.sweep.results import read_objective

    r2 = SweepSection(params={"training.batch_size": [8, 16]}, objective="test.clear.r2")
    mae = SweepSection(params={"training.batch_size": [8, 16]}, objective="val_mae")
    assert r2.check() == [] and r2.maximize and not mae.maximize
    final = [e["matrix"]["clear"]["test"] for e in RunReader(fit_run).evaluations()]
    assert read_objective(fit_run, r2) == pytest.approx(sum(final) / len(final))
    best_mae = [
        min(e["metrics"]["val_mae"] for e in RunReader(fit_run).epochs(t))
        for t in ("mlp-short", "mlp-long")
    ]
    assert read_objective(fit_run, mae) == pytest.approx(sum(best_mae) / 2)


def test_kvision_data_describes_the_pairs():
    from kvision.data.describe import describe_target

    text = describe_target(str(ROOT / "recipes" / "function_fit.toml"))
    assert "(x, y) pairs for a regression, domain [-2.0, 3.0]" in text
    assert "train       30 pairs" in text and "test       400 pairs   x in [-2.000, 3.000]" in text
