"""What the trials of a run are (plans) and where one stands (its state, kept in checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kvision.recipe import Recipe
from kvision.recipe.schema import ArmSection, ModelSection, StageSection


@dataclass
class TrialPlan:
    """What one trial is: names, the model table, the arm, and its seed."""

    name: str
    model_name: str
    model: ModelSection
    arm_index: int
    arm: ArmSection
    seed: int
    repeat: int = 0

    @property
    def stages(self) -> tuple[StageSection, ...]:
        """The arm's stages."""
        return self.arm.stages


@dataclass
class TrialState:
    """Where a trial is; saved in every checkpoint so a resume continues exactly."""

    stage_index: int = 0
    stage_epoch: int = 0  # epochs completed in the current stage
    global_epoch: int = 0  # epochs completed in the whole trial
    evaluated: list[str] = field(default_factory=list)
    stage_done: bool = False
    early: dict = field(default_factory=dict)
    plateau: dict = field(default_factory=dict)
    seconds: float = 0.0

    def next_stage(self) -> None:
        """The current stage is over: the next one starts at its first epoch."""
        self.stage_index, self.stage_epoch, self.stage_done = self.stage_index + 1, 0, False
        self.early, self.plateau = {}, {}


def plan_trials(recipe: Recipe) -> list[TrialPlan]:
    """Every model x arm (x repeat), in recipe order."""
    plans = []
    repeats = recipe.experiment.repeats
    for r in range(repeats):
        for model_name, model in recipe.models.items():
            for i, arm in enumerate(recipe.arms):
                if arm.models is not None and model_name not in arm.models:
                    continue
                name = f"{model_name}-{arm.name}" + (f"-s{r}" if repeats > 1 else "")
                plans.append(
                    TrialPlan(name, model_name, model, i, arm, recipe.experiment.seed + r, r)
                )
    return plans


__all__ = ["TrialPlan", "TrialState", "plan_trials"]
