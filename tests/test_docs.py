"""The README and the docs site: short README, runnable commands, every recipe named, every
recipe key in the generated reference. (CI builds the site itself with ``mkdocs build --strict``.)"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")
SETUP = "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "


def test_readme_is_short_and_keeps_the_two_fresh_machine_commands():
    assert len(README.splitlines()) <= 250
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert SETUP + "pip install -e . && kvision run recipes/naive_vs_expert.toml" in blocks
    assert (
        SETUP + 'pip install -e ".[test,tfds,postgres,docs,onnx,jax]" && '
        "python -m pytest -q -n 2 --dist worksteal" in blocks
    )


def test_readme_names_every_shipped_recipe():
    missing = [
        p.name for p in sorted((ROOT / "recipes").glob("*.toml")) if f"`{p.name}`" not in README
    ]
    assert not missing, f"recipes not in README's table: {missing}"


def test_the_readme_recipe_is_valid():
    from kvision.recipe import validate
    from kvision.recipe.load import parse_toml

    (text,) = re.findall(r"```toml\n(.*?)\n```", README, re.S)
    recipe, errors = validate(parse_toml(text, "README.md"), file="README.md", text=text)
    assert not errors and recipe.experiment.name == "naive_vs_expert"


def test_the_reference_tables_cover_every_recipe_key():
    import dataclasses

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.pop(0)
    from kvision.recipe.schema import Recipe
    from kvision.recipe.schema_training import TrainingSection

    sections = [f.name for f in dataclasses.fields(Recipe) if f.init]
    text = "".join(hooks.recipe_keys(s) for s in sections)
    for key in (
        "experiment.seed",
        "data.balance.method",
        "data.function.noise",
        "conditions.NAME.blur.kind",
        "arms[].stages[].epochs",
        "training.optimizer.momentum",
        "insight.robustness.kinds",
        "sweep.objective",
        "output.runs_dir",
        "models.NAME.arch",
    ):
        assert f"`{key}`" in text, key
    for f in dataclasses.fields(TrainingSection):  # nested tables list their own keys
        assert f"`training.{f.name}`" in text, f.name


def test_every_page_marker_is_known_and_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text("utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert all(f": {name}" in nav for name in pages), pages
    known = {"recipe-keys", "models", "model-options", "recipes", "cli", "event-kinds", "measured"}
    for page in pages:
        for kind in re.findall(
            r"^<!-- kvision: ([a-z-]+)", (ROOT / "docs" / page).read_text(), re.M
        ):
            assert kind in known, (page, kind)


def test_measured_files_say_where_when_and_how_they_were_measured():
    """docs/measured/ holds only what a benchmark's --markdown wrote (kvision.bench.stamp)."""
    for path in sorted((ROOT / "docs" / "measured").glob("*.md")):
        text = path.read_text("utf-8")
        assert all(
            f"\n- {field}: " in text for field in ("machine", "software", "date", "command")
        ), path


def test_the_readme_quotes_the_measured_main_job_time():
    """README's time for the main job is the figure benchmarks/main_job.py wrote, not retyped."""
    measured = (ROOT / "docs" / "measured" / "main_job.md").read_text("utf-8")
    (seconds,) = re.findall(r"([\d.]+) s inside the run", measured)
    assert f"{seconds} s inside the run on a quiet 2-core CPU" in README


def test_the_readme_quotes_the_measured_suite_time():
    """README's test-suite times are what benchmarks/suite_time.py wrote (each part, with
    the load); until it ran in this checkout, the README says so and quotes none."""
    path = ROOT / "docs" / "measured" / "test_suite.md"
    if not path.is_file():
        assert "The suite's time is not measured in this checkout yet" in " ".join(README.split())
        return
    measured = path.read_text("utf-8")
    quick, whole, serial = (
        re.search(
            rf"^- {part} suite: ([\d.]+ s \(\d+:\d\d\)) wall.*?\(load average ([\d.]+)",
            measured,
            re.M,
        )
        for part in ("quick", "whole", "serial")
    )
    sentence = (
        f"The quick part took {quick[1]} and the whole suite {whole[1]} "
        f"(load average {quick[2]} and {whole[2]} at their start)"
    )
    if serial:  # measured only where the file has the part (`--only ... serial`)
        sentence += f"; in one process (without `-n 2`) the whole suite took {serial[1]}"
    assert " ".join(sentence.split()) in " ".join(README.split()), sentence
