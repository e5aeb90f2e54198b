"""The model a user points at: a run, a trial of a run, or a model file.

``kvision viz``, ``predict`` and ``export`` all take one (``MODEL`` / ``RUN`` and ``--trial``);
:func:`resolve` is the one way from that argument to model files, so the three accept the same
things and refuse the same mistakes with the same paragraph. Loading is
:func:`kvision.portable.loading.load_checked` (safe mode), also the same for all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kvision.errors import KvisionError, did_you_mean
from kvision.runs import RunReader, is_run_dir

#: Every file format kvision export writes (and kvision predict reads).
MODEL_FILES = (".keras", ".onnx", ".pt2")


@dataclass(frozen=True)
class ModelArg:
    """A command's model argument as the user typed it, and its ``--trial``."""

    target: str | Path
    trial: str | None = None


@dataclass(frozen=True)
class PointedModels:
    """The model files behind a :class:`ModelArg`: a run's trials (by name) or one file (by
    its stem), the run they belong to, the trial chosen (``--trial`` or a trial directory)
    and that run's trials with no model yet."""

    models: dict[str, Path]
    run_dir: Path | None = None
    trial: str | None = None
    waiting: list[str] = field(default_factory=list)

    def only(self) -> tuple[str, Path]:
        """The one model, for commands that use one; a run with several asks for --trial."""
        if len(self.models) > 1:
            raise KvisionError(
                f"Run '{self.run_dir}' has {len(self.models)} trained models; choose one with "
                f"--trial: {', '.join(self.models)}."
            )
        ((name, path),) = self.models.items()
        return name, path

    def class_names(self) -> list[str] | None:
        """Class names from the run's data, or from an exported file's sidecar."""
        if self.run_dir is not None:
            loaded = RunReader(self.run_dir).of("data_loaded")
            return loaded[-1].get("class_names") if loaded else None
        from kvision.portable.sidecar import read_sidecar

        (path,) = self.models.values()
        return (read_sidecar(path) or {}).get("class_names")


def resolve(
    arg: ModelArg, *, reads: tuple[str, ...] = MODEL_FILES, need_models: bool = True
) -> PointedModels:
    """Model files for ``arg``: a model file whose suffix is in ``reads``, a trial directory
    (``<run>/trials/<trial>``) or a run directory (every trial with a model, or ``--trial``).

    With ``need_models=False`` a run with no saved model yet resolves to no models.
    """
    path = Path(arg.target).expanduser()
    if path.name == "model.keras" and _trial_dir(path.parent):  # a run's own file: its trial,
        path = path.parent  # so the run's class names and images/ folder come with it
    if path.is_file() and path.suffix in reads:
        return PointedModels({path.stem: path})
    if is_run_dir(path):
        return _from_run(path, arg.trial, need_models)
    if _trial_dir(path):
        return _from_run(path.parent.parent, path.name, need_models)
    raise KvisionError(_not_a_model(arg.target, path, reads))


def _trial_dir(path: Path) -> bool:
    """Whether ``path`` is ``<run>/trials/<trial>``."""
    return path.parent.name == "trials" and is_run_dir(path.parent.parent)


def _not_a_model(target: str | Path, path: Path, reads: tuple[str, ...]) -> str:
    if not reads:  # a command that needs the run itself (export: the sidecar comes from it)
        return (
            f"'{target}' is not a kvision run directory (no meta.json / events.jsonl) "
            "nor a trial directory of one (<run>/trials/<trial>)."
        )
    what = (
        "a kvision run directory (a folder with meta.json and events.jsonl), a trial "
        f"directory (<run>/trials/<trial>) nor a model file ({', '.join(reads)})"
    )
    if not path.exists():
        return f"'{target}' does not exist: give {what.replace(' nor ', ' or ')}."
    return f"'{target}' is neither {what}."


def _from_run(run_dir: Path, trial: str | None, need_models: bool) -> PointedModels:
    reader = RunReader(run_dir)
    trials = reader.trials()
    ready = {t: p for t in trials if (p := run_dir / "trials" / t / "model.keras").is_file()}
    if trial is not None:
        if trial in ready:
            return PointedModels({trial: ready[trial]}, run_dir, trial)
        if trial in trials:
            raise KvisionError(_no_model(run_dir, reader, [trial]))
        raise KvisionError(
            f"Run '{run_dir}' has no trial '{trial}' with a saved model."
            f"{did_you_mean(trial, trials)} Trials with a model: {', '.join(ready) or 'none yet'}."
        )
    if not ready and need_models:
        raise KvisionError(_no_model(run_dir, reader, trials))
    return PointedModels(ready, run_dir, waiting=[t for t in trials if t not in ready])


def _no_model(run_dir: Path, reader: RunReader, trials: list[str]) -> str:
    names = ", ".join(trials) or "no trial has started"
    if reader.recipe().get("output", {}).get("save_models") is False:
        return (
            f"Run '{run_dir}' saved no models: its recipe sets output.save_models = false. "
            "Run it again without that setting to keep them."
        )
    status = reader.status()
    why = {
        "running": "the run is still running, and a trial writes its model when it finishes",
        "interrupted": "the run was stopped; finish it with kvision run --resume",
        "stale": "the run stopped without finishing; finish it with kvision run --resume",
        "failed": "the run failed before these trials finished (see its run.log)",
        "finished": "the run finished, so the model files are missing (moved or deleted?)",
    }
    return (
        f"Run '{run_dir}' has no saved model for {names} yet (trials/<trial>/model.keras): "
        f"{why.get(status, 'a trial writes its model when it finishes')}."
    )
