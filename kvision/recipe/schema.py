"""The recipe: its top-level sections, arms and stages, and the checks across sections."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from kvision.errors import did_you_mean, printable
from kvision.recipe.schema_data import ConditionSection, DataSection
from kvision.recipe.schema_insight import InsightSection
from kvision.recipe.schema_sweep import SweepSection
from kvision.recipe.schema_training import (
    CLASSIFICATION_LOSSES,
    REGRESSION_LOSSES,
    TrainingSection,
)
from kvision.recipe.spec import option

# Matched with fullmatch: "$" alone would let a name end in a newline into folder names.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Seeds reach NumPy, scikit-learn (random_state: 0..2**32-1), Keras and torch: the
#: narrowest of them bounds every seed a run derives (seed + repeat).
SEED_MAX = 2**32 - 1
SPLITS = ("train", "val", "test")


def _name_problem(value: str) -> str | None:
    if not NAME_RE.fullmatch(value):
        return (
            f"'{printable(value)}' is not a valid name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (it becomes part of file names)."
        )
    return None


@dataclass(frozen=True)
class ExperimentSection:
    """What the experiment is called and how it is seeded."""

    name: str = option(help="Experiment name; part of the run directory's name.")
    seed: int = option(
        42,
        help="Seeds weights, data split, order and augmentation (report 000: 42).",
        ge=0,
        le=SEED_MAX,
    )
    description: str = option("", help="Free text shown in the report.")
    repeats: int = option(
        1, help="Run every trial with this many seeds (seed, seed+1, ...).", ge=1, le=100
    )

    def check(self) -> list[tuple[str, str]]:
        """The name must be usable in a file name; repeat r is seeded seed + r."""
        problem = _name_problem(self.name)
        found = [("name", problem)] if problem else []
        if self.seed + self.repeats - 1 > SEED_MAX:
            found.append(
                (
                    "seed",
                    f"seed {self.seed} with {self.repeats} repeats seeds up to "
                    f"{self.seed + self.repeats - 1}, above {SEED_MAX} (the largest seed "
                    "the generators accept).",
                )
            )
        return found


@dataclass(frozen=True)
class ModelSection:
    """One model of the experiment: an architecture from the registry and its options.

    Keys other than the declared ones (e.g. ``downscale = 2``) are architecture options,
    checked against the architecture's builder before any work starts.
    """

    EXTRA_KEYS: ClassVar[str] = "options"
    arch: str = option(help="Architecture name (see `kvision models`).")
    weights: str | None = option(
        None, help="'imagenet', a weights file, or a kvision run directory."
    )
    freeze: tuple[str, ...] = option((), help="Layer-name patterns or stage names to freeze.")
    unfreeze: tuple[str, ...] = option(
        (), help="Patterns or stages to keep trainable inside frozen ones."
    )
    options: dict[str, Any] = option(default_factory=dict, help="Architecture options.")


@dataclass(frozen=True)
class StageSection:
    """One stage of an arm: a condition, epochs, and training overrides.

    Keys other than the declared ones are ``[training]`` keys overriding the recipe's for this
    stage, checked like ``[training]``'s own; ``training`` is the stage's resolved settings
    (the recipe's ``[training]`` deep-merged with the overrides), set once when the recipe is
    loaded.
    """

    EXTRA_KEYS: ClassVar[str] = "overrides"
    EXTRA_SCHEMA: ClassVar[type] = TrainingSection
    name: str = option(help="Stage name (e.g. pretrain, train); unique within its arm.")
    condition: str = option(help="Name of the [conditions] entry this stage trains on.")
    epochs: int = option(help="Number of epochs.", ge=0, le=100000)
    freeze: tuple[str, ...] | None = option(
        None, help="Layer patterns or stages frozen in this stage."
    )
    unfreeze: tuple[str, ...] | None = option(
        None, help="Patterns or stages trainable in this stage."
    )
    overrides: dict[str, Any] = option(
        default_factory=dict, help="[training] keys overriding the recipe's, as written."
    )
    training: TrainingSection = dataclasses.field(
        default_factory=TrainingSection, init=False, repr=False, compare=False
    )

    def check(self) -> list[tuple[str, str]]:
        """Stage names become file names."""
        problem = _name_problem(self.name)
        return [("name", problem)] if problem else []


@dataclass(frozen=True)
class ArmSection:
    """A training protocol: stages run in order, weights carried from stage to stage."""

    name: str = option(help="Arm name (e.g. naive, expert).")
    stages: tuple[StageSection, ...] = option(help="Ordered stages.", min_len=1)
    models: tuple[str, ...] | None = option(None, help="Only these [models] (default: all).")
    versus: tuple[str, ...] = option(
        (),
        help="Arms this one is compared with in the repeats "
        "report ('this − other', paired by repeat). When "
        "no arm sets it, each arm is compared with the one "
        "before it.",
    )

    def check(self) -> list[tuple[str, str]]:
        """Names usable in file names and unique stage names."""
        problems = []
        if p := _name_problem(self.name):
            problems.append(("name", p))
        seen: set[str] = set()
        for i, stage in enumerate(self.stages):
            if stage.name in seen:
                problems.append(
                    (
                        f"stages[{i}].name",
                        f"duplicate stage name '{stage.name}' in arm '{self.name}'.",
                    )
                )
            seen.add(stage.name)
        return problems


@dataclass(frozen=True)
class EvaluateSection:
    """The accuracy matrix: which conditions x splits, and when."""

    conditions: tuple[str, ...] | None = option(None, help="Conditions evaluated (default: all).")
    splits: tuple[str, ...] = option(
        ("train", "test"),
        help="Splits evaluated (report 000: train and test).",
        choices=SPLITS,
        min_len=1,
    )
    before: bool = option(True, help="Evaluate before training (report 000's 'before' table).")
    after_each_stage: bool = option(
        True, help="Evaluate after every stage (else after the last only)."
    )
    max_images: int | None = option(
        None,
        help="Evaluate train/val on at most this many images (seeded subset); test is always whole.",
        ge=1,
    )


@dataclass(frozen=True)
class OutputSection:
    """Where and what a run writes."""

    runs_dir: str = option("runs", help="Folder under which run directories are created.")
    save_models: bool = option(True, help="Export each trial's final model as model.keras.")
    checkpoint_every: int = option(1, help="Write a resumable checkpoint every N epochs.", ge=1)
    print_every: int = option(
        1,
        help="Print every Nth epoch's line (and a stage's last) on the "
        "console; events.jsonl records every epoch.",
        ge=1,
    )


@dataclass(frozen=True)
class Recipe:
    """A validated, frozen recipe."""

    experiment: ExperimentSection = option(help="[experiment] table.")
    data: DataSection = option(help="[data] table.")
    models: dict[str, ModelSection] = option(help="[models.NAME] tables.", min_len=1)
    arms: tuple[ArmSection, ...] = option(help="[[arms]] tables.", min_len=1)
    conditions: dict[str, ConditionSection] = option(
        default_factory=lambda: {"clear": ConditionSection()},
        help="[conditions.NAME] tables (default: one 'clear' condition).",
    )
    training: TrainingSection = option(default_factory=TrainingSection, help="[training] table.")
    evaluate: EvaluateSection = option(default_factory=EvaluateSection, help="[evaluate] table.")
    output: OutputSection = option(default_factory=OutputSection, help="[output] table.")
    insight: InsightSection = option(default_factory=InsightSection, help="[insight] table.")
    sweep: SweepSection | None = option(None, help="[sweep] table: a hyper-parameter search.")
    #: The validated TOML data (--set overrides applied), as recorded in meta.json.
    raw: dict[str, Any] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def check(self) -> list[tuple[str, str]]:
        """References between sections: conditions, models and names."""
        problems = []
        for key, names in (("conditions", self.conditions), ("models", self.models)):
            for name in names:
                if p := _name_problem(name):
                    problems.append((f"{key}.{name}", p))
        names = [a.name for a in self.arms]
        for i, arm in enumerate(self.arms):
            problems += _arm_refs(i, arm, self.conditions, self.models)
            problems += _versus_refs(i, arm, names)
        for i, name in enumerate(names):
            if name in names[:i]:
                problems.append((f"arms[{i}].name", f"duplicate arm name '{name}'."))
        for j, cond in enumerate(self.evaluate.conditions or ()):
            if cond not in self.conditions:
                problems.append(
                    (f"evaluate.conditions[{j}]", _missing("condition", cond, self.conditions))
                )
            elif self.conditions[cond].mix:
                problems.append(
                    (
                        f"evaluate.conditions[{j}]",
                        f"'{cond}' is a mix, drawn per "
                        f"batch in training; evaluate the conditions it mixes.",
                    )
                )
        return problems + _mix_refs(self.conditions) + self._task_problems()

    @property
    def task(self) -> str:
        """'regression' for a function: source, else 'classification'."""
        return "regression" if self.data.regression else "classification"

    def _task_problems(self) -> list[tuple[str, str]]:
        """Losses of the other task, and blur on (x, y) data."""
        allowed = REGRESSION_LOSSES if self.task == "regression" else CLASSIFICATION_LOSSES
        where = [("training.loss", self.training.loss)] + [
            (f"arms[{i}].stages[{j}].loss", stage.overrides.get("loss"))
            for i, arm in enumerate(self.arms)
            for j, stage in enumerate(arm.stages)
        ]
        problems = [
            (
                key,
                f"loss '{loss}' does not fit a {self.task} recipe; use one of "
                f"{', '.join(allowed)}.",
            )
            for key, loss in where
            if loss is not None and loss not in allowed
        ]
        if self.task == "regression":
            problems += [
                (
                    f"conditions.{name}.blur",
                    "blur applies to images; a function: source gives (x, y) pairs.",
                )
                for name, cond in self.conditions.items()
                if cond.blur is not None
            ]
        return problems


def _arm_refs(i: int, arm: ArmSection, conditions: dict, models: dict) -> list[tuple[str, str]]:
    problems = []
    for j, stage in enumerate(arm.stages):
        if stage.condition not in conditions:
            problems.append(
                (
                    f"arms[{i}].stages[{j}].condition",
                    _missing("condition", stage.condition, conditions),
                )
            )
    for j, model in enumerate(arm.models or ()):
        if model not in models:
            problems.append((f"arms[{i}].models[{j}]", _missing("model", model, models)))
    return problems


def _mix_refs(conditions: dict[str, ConditionSection]) -> list[tuple[str, str]]:
    problems = []
    for name, cond in conditions.items():
        for part in cond.mix or {}:
            key = f"conditions.{name}.mix.{part}"
            if part not in conditions:
                problems.append((key, _missing("condition", part, conditions)))
            elif conditions[part].mix:
                problems.append(
                    (key, f"'{part}' is itself a mix; a mix draws from plain conditions only.")
                )
    return problems


def _versus_refs(i: int, arm: ArmSection, names: list[str]) -> list[tuple[str, str]]:
    problems = []
    for j, other in enumerate(arm.versus):
        key = f"arms[{i}].versus[{j}]"
        if other == arm.name:
            problems.append((key, f"arm '{arm.name}' cannot be compared with itself."))
        elif other not in names:
            problems.append(
                (
                    key,
                    f"arm '{other}' is not defined.{did_you_mean(other, names)} "
                    f"Arms: {', '.join(names)}.",
                )
            )
    return problems


def _missing(kind: str, name: str, known: dict) -> str:
    table = "conditions" if kind == "condition" else "models"
    return (
        f"{kind} '{name}' is not defined.{did_you_mean(name, known)} "
        f"Defined in [{table}]: {', '.join(known) or 'none'}."
    )
