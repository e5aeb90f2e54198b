"""The Optuna study a sweep drives: a journal file of its own, or one shared by many workers.

``local_study`` opens the journal in the sweep directory (one coordinator, under the
directory's lock). ``SharedStudy`` opens a study in a database before anything is written:
the first worker creates it, records its recipe and queues the budget (see
:mod:`kvision.sweep.slots`); later workers, on any machine, join it when their recipe is the
same, and refuse (exit 2, nothing changed) when it is not.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvision.errors import KvisionError
from kvision.recipe.schema_sweep import SweepSection
from kvision.sweep import slots
from kvision.sweep.storage import journal_storage, open_database, shown

RECIPE_ATTR, BUDGET_ATTR, READY_ATTR = "kvision:recipe", "kvision:budget", "kvision:ready"
READY_WAIT_S = 120  # a joining worker waits this long for the creator to queue the budget
#: ...and this long for it to record its recipe, which kvision's creator does at once: a
#: study without one after that was made by something else.
RECIPE_WAIT_S = 5.0
# Keys the user may change when resuming or joining (a bigger budget, more or fewer parallel).
RESUMABLE_CHANGES = ("trials", "parallel")


def comparable(raw: dict) -> dict:
    """The recipe as two workers (or a sweep and its resume) must agree on it."""
    sweep = {k: v for k, v in raw.get("sweep", {}).items() if k not in RESUMABLE_CHANGES}
    return json.loads(json.dumps({**raw, "sweep": sweep}, default=str))


@dataclass
class SweepStudy:
    """An open study and the storage its trials are claimed through."""

    study: Any
    storage: Any
    study_id: int
    shared: bool = False  # several workers: no adoption of RUNNING trials, heartbeat instead
    heartbeat: int | None = None

    def claim(self) -> Any | None:
        """The next queued trial, now RUNNING for this worker; None when the queue is empty."""
        beat = self.shared and bool(self.heartbeat)
        return slots.claim(self.study, self.storage, self.study_id, beat=beat)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def set_trial_attr(self, number: int, key: str, value: Any) -> None:
        """A user attribute of trial ``number`` (its run directory, its error...)."""
        self.storage.set_trial_user_attr(self.trial_id(number), key, value)

    def unfinished(self) -> tuple[list[Any], list[Any]]:
        """(WAITING, RUNNING) trials: work that is queued, or under way on some worker."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(
            deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)
        )
        return (
            [t for t in trials if t.state == TrialState.WAITING],
            [t for t in trials if t.state == TrialState.RUNNING],
        )

    def fail_stale(self) -> None:
        """Fail trials whose worker stopped beating; the retry callback queues them again."""
        if self.shared and self.heartbeat:
            import warnings

            from optuna.exceptions import ExperimentalWarning
            from optuna.storages import fail_stale_trials

            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", ExperimentalWarning)
                fail_stale_trials(self.study)


def local_study(journal: Path, spec: SweepSection, total: int) -> SweepStudy:
    """The sweep directory's own study (journal file); its budget topped up to ``total``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own lines
    storage = journal_storage(journal)
    study = optuna.create_study(
        study_name="sweep", storage=storage, direction=_direction(spec), load_if_exists=True
    )
    set_sampler(study, spec, salt=0)
    slots.top_up(study, spec, total)  # safe: the caller holds the sweep directory's lock
    return SweepStudy(study, storage, storage.get_study_id_from_name("sweep"))


def set_sampler(study: Any, spec: SweepSection, salt: int) -> None:
    """The recipe's sampler, seeded by the trials so far (a resumed sweep does not replay the
    first suggestions) and by ``salt`` (workers sharing a study must not draw alike)."""
    import optuna
    from optuna.trial import TrialState

    started = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    seed = (spec.seed or 0) + started + salt  # spec.seed is set by split_sweep
    if spec.sampler == "bayes":
        parallel = spec.parallel > 1 or salt != 0
        study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    else:
        study.sampler = optuna.samplers.RandomSampler(seed=seed)


def _direction(spec: SweepSection) -> str:
    return "maximize" if spec.maximize else "minimize"


class SharedStudy:
    """A study in a database that workers on several machines share (``--storage URL``)."""

    def __init__(
        self, url: str, name: str, *, heartbeat: int | None = None, grace: int | None = None
    ) -> None:
        import optuna
        from optuna.storages import get_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url, self.name, self.heartbeat = url, name, heartbeat
        rdb = open_database(
            url,
            heartbeat=heartbeat,
            grace=grace,
            on_stale=slots.retry_callback() if heartbeat else None,
        )
        self.storage = get_storage(rdb)  # Optuna's cached wrapper, as create_study would use

    def existing(self) -> Any | None:
        """The study's summary when it exists, else None (reads only)."""
        return next((s for s in self.storage.get_all_studies() if s.study_name == self.name), None)

    def check_recipe(self, raw: dict, source: str) -> None:
        """Refuse to join a study that runs another recipe (nothing is written)."""
        if self.existing() is None:
            return
        if self._wait_ready() != comparable(raw):
            raise KvisionError(
                f"The recipe '{source}' (with its --set overrides) differs from the one the study "
                f"'{self.name}' in {shown(self.url)} was started with, so joining it would mix two "
                "experiments. Run the same recipe and overrides on every machine (only --trials "
                "and --parallel may differ), or give this sweep its own --study NAME."
            )

    def join(
        self, spec: SweepSection, raw: dict, total: int, source: str
    ) -> tuple[SweepStudy, str]:
        """Create the study (and queue its budget) or join it; returns it and what was done."""
        import optuna
        from optuna.exceptions import DuplicatedStudyError
        from optuna.study import StudyDirection

        direction = StudyDirection.MAXIMIZE if spec.maximize else StudyDirection.MINIMIZE
        try:
            study_id = self.storage.create_new_study([direction], self.name)
            created = True
        except DuplicatedStudyError:  # another worker was first: join it
            study_id, created = self.storage.get_study_id_from_name(self.name), False
        study = optuna.load_study(study_name=self.name, storage=self.storage)
        if created:
            study.set_user_attr(RECIPE_ATTR, comparable(raw))
            note = self._queue(
                study, spec, total, f"created study '{self.name}' with a budget of {total} trials"
            )
        else:
            self.check_recipe(raw, source)  # it may have been created since the first check
            stored = int(study.user_attrs[BUDGET_ATTR])
            note = f"joined study '{self.name}' ({stored} trials)"
            if total > stored:  # --trials raised the budget
                note = self._queue(
                    study,
                    spec,
                    total,
                    f"joined study '{self.name}' and raised "
                    f"its budget from {stored} to {total} trials",
                )
        set_sampler(study, spec, salt=zlib.crc32(slots.worker_name().encode()) % 100_000 + 1)
        return SweepStudy(
            study, self.storage, study_id, shared=True, heartbeat=self.heartbeat
        ), note

    def _queue(self, study: Any, spec: SweepSection, total: int, note: str) -> str:
        slots.top_up(study, spec, total)
        study.set_user_attr(BUDGET_ATTR, total)
        study.set_user_attr(READY_ATTR, True)
        return note

    def _wait_ready(self) -> dict | None:
        """The study's recipe, once its creator has queued the budget (bounded wait)."""
        study_id = self.storage.get_study_id_from_name(self.name)
        started = time.monotonic()
        attrs = self.storage.get_study_user_attrs(study_id)
        while not attrs.get(READY_ATTR) and time.monotonic() - started < READY_WAIT_S:
            if RECIPE_ATTR not in attrs and time.monotonic() - started > RECIPE_WAIT_S:
                break  # its creator records the recipe at once: a study made by something else
            time.sleep(0.5)
            attrs = self.storage.get_study_user_attrs(study_id)
        if RECIPE_ATTR not in attrs:
            raise KvisionError(
                f"The study '{self.name}' in {shown(self.url)} is not a kvision "
                "sweep (it has no recipe recorded); give this sweep its own "
                "--study NAME."
            )
        if not attrs.get(READY_ATTR):
            raise KvisionError(
                f"The study '{self.name}' in {shown(self.url)} exists but its budget was not queued "
                f"within {READY_WAIT_S} s: the worker that created it seems to have stopped before. "
                "Delete the study (optuna delete-study) or use another --study NAME."
            )
        return attrs[RECIPE_ATTR]

    def load(self) -> Any:
        """The study for reading (``kvision sweep report``); KvisionError when absent."""
        import optuna

        if self.existing() is None:
            names = sorted(s.study_name for s in self.storage.get_all_studies())
            raise KvisionError(
                f"There is no study '{self.name}' in {shown(self.url)}; it holds: "
                f"{', '.join(names) or 'no studies'}. Name one with --study NAME."
            )
        return optuna.load_study(study_name=self.name, storage=self.storage)

    def summaries(self) -> list[Any]:
        return self.storage.get_all_studies()


__all__ = ["SharedStudy", "SweepStudy", "comparable", "local_study", "set_sampler"]
