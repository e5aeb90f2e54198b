"""A sweep's ranked report from its study, on any machine: one row per Optuna trial, with
where its run directory is (host and path, as the worker recorded it), and
``kvision sweep report URL|SWEEP_DIR`` to rebuild sweep.md, sweep.json and sweep.png.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from kvision.errors import KvisionError
from kvision.recipe.schema_sweep import SweepSection
from kvision.sweep.results import write_sweep_report
from kvision.sweep.search_space import budget, split_sweep, trial_params
from kvision.sweep.storage import is_url, journal_storage, shown
from kvision.sweep.studies import BUDGET_ATTR, RECIPE_ATTR, SharedStudy

META, JOURNAL = "sweep_meta.json", "study.journal"


def write_report(folder: Path, study: Any, spec: SweepSection, total: int) -> dict | None:
    """sweep.md, sweep.json and sweep.png of every trial the study has started; the best row."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    retried = {
        t.system_attrs["failed_trial"]: t.number
        for t in trials
        if t.system_attrs.get("failed_trial") is not None
    }
    rows = [_row(folder, t, spec, retried.get(t.number), study.user_attrs) for t in trials]
    write_sweep_report(folder, spec, rows, total)
    return json.loads((folder / "sweep.json").read_text("utf-8"))["best"]


def _row(folder: Path, t: Any, spec: SweepSection, retry: int | None, study_attrs: dict) -> dict:
    seconds = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if (t.datetime_complete and t.datetime_start)
        else None
    )
    error = t.user_attrs.get("error") or study_attrs.get(f"error_{t.number}")  # older journals
    if retry is not None and t.state.name == "FAIL":
        error = f"its worker stopped answering (no heartbeat); retried as trial {retry:03d}"
    return {
        "trial": t.number,
        "run_dir": _where(folder, t),
        "host": t.user_attrs.get("host"),
        "worker": t.user_attrs.get("worker"),
        "retry_of": t.system_attrs.get("failed_trial"),
        "retried_as": retry,
        "state": t.state.name.lower().replace("fail", "failed"),
        "objective": t.value,
        "params": trial_params(spec, t.params),
        "seconds": seconds,
        "error": error,
    }


def _where(folder: Path, t: Any) -> str:
    """The run directory as a reader of this report finds it: relative to the report's folder
    when inside it, a path on this machine, else ``host:path``."""
    path = t.user_attrs.get("run_dir")
    if not path:
        return f"trials/{t.number:03d}"
    try:
        return str(Path(path).relative_to(folder.resolve()))
    except ValueError:
        pass
    host = t.user_attrs.get("host")
    return path if host in (None, socket.gethostname()) else f"{host}:{path}"


def report_sweep(target: str, *, study: str | None = None, out: str | None = None) -> Path:
    """``kvision sweep report URL|SWEEP_DIR``: the report rebuilt from the study; its sweep.md.

    A URL reads the study from the database (written to ``out``, default the current
    folder); a sweep directory reads its own journal, or the database it names.
    """
    if is_url(target):
        shared = SharedStudy(target, study or _only_study(target))
        folder = Path(out or ".")
    else:
        folder = Path(target).expanduser()
        meta = _meta(folder)
        shared = (
            SharedStudy(meta["storage"], study or meta["study"]) if meta.get("storage") else None
        )
        if shared is None:
            return _journal_report(folder, meta, Path(out) if out else folder)
        folder = Path(out) if out else folder
    optuna_study = shared.load()
    attrs = optuna_study.user_attrs
    if RECIPE_ATTR not in attrs:
        raise KvisionError(
            f"The study '{shared.name}' in {shown(shared.url)} is not a kvision sweep "
            "(it has no recipe recorded)."
        )
    spec, _base = split_sweep(attrs[RECIPE_ATTR], file=f"{shown(shared.url)} study {shared.name}")
    folder.mkdir(parents=True, exist_ok=True)
    write_report(folder, optuna_study, spec, int(attrs.get(BUDGET_ATTR, budget(spec))))
    return folder / "sweep.md"


def _meta(folder: Path) -> dict:
    try:
        return json.loads((folder / META).read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        raise KvisionError(
            f"'{folder}' is not a sweep directory (it has no readable {META}); "
            "give a sweep directory or a database URL: kvision sweep report "
            "URL|SWEEP_DIR."
        ) from None


def _journal_report(folder: Path, meta: dict, out: Path) -> Path:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not (folder / JOURNAL).exists():
        raise KvisionError(
            f"The sweep directory '{folder}' has no {JOURNAL}: no trial was started yet."
        )
    spec, _base = split_sweep(meta["raw"], file=str(folder / META))
    study = optuna.load_study(study_name="sweep", storage=journal_storage(folder / JOURNAL))
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, study, spec, budget(spec))
    return out / "sweep.md"


def _only_study(url: str) -> str:
    """The study of a database that holds just one kvision sweep; else say which to name."""
    names = sorted(
        s.study_name for s in SharedStudy(url, "").summaries() if RECIPE_ATTR in s.user_attrs
    )
    if len(names) == 1:
        return names[0]
    raise KvisionError(
        f"The database {shown(url)} holds {len(names)} kvision sweeps"
        + (f" ({', '.join(names)})" if names else "")
        + "; name one with --study NAME."
    )


__all__ = ["JOURNAL", "META", "report_sweep", "write_report"]
