"""A sweep's trial budget as Optuna trials queued in the study, claimed one at a time.

The budget holds however many machines share a study because it lives in the study itself:
``trials`` WAITING trials (grid combinations, or empty ones the sampler fills in) are queued
once, and a worker only ever runs a trial it has moved from WAITING to RUNNING. That move is
the storage's own atomic check (Optuna's ``set_trial_state_values``: SELECT ... FOR UPDATE
on a server, BEGIN IMMEDIATE on SQLite, the ordered log of a journal file): of two workers
claiming the same trial one gets it, the other moves on, and none ever creates a trial
beyond the queue (``Study.ask`` would, when the queue is empty).

A trial whose worker died is failed by Optuna's heartbeat check and queued again by its
retry callback (same parameters, ``failed_trial`` naming the first): it takes the dead
trial's place in the budget, so the two count once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from kvision.recipe.schema_sweep import SweepSection
from kvision.sweep.search_space import grid, grid_labels

MAX_RETRIES = 3  # a trial that kills its worker every time is not retried forever


def used(trials: list[Any]) -> int:
    """Budget places taken: every trial except the failed ones a retry has replaced."""
    replaced = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    return sum(t.number not in replaced for t in trials)


def top_up(study: Any, spec: SweepSection, total: int) -> int:
    """Queue WAITING trials until the study holds ``total`` places; returns how many were added.

    Only one worker may do this at a time (the one that created the study, or a sweep
    resumed under its directory lock): two would queue the same places twice.
    """
    taken = used(study.get_trials(deepcopy=False))
    combos = grid(spec) if spec.sampler == "grid" else None
    for index in range(taken, total):
        # grid: the next combination in order; else an empty trial the sampler fills in
        study.enqueue_trial(grid_labels(combos[index]) if combos else {})
    return max(0, total - taken)


def claim(study: Any, storage: Any, study_id: int, *, beat: bool = False) -> Any | None:
    """Move one WAITING trial to RUNNING for this worker; its ``optuna.Trial``, or None.

    ``beat`` (a shared study with heartbeats): beat for the trial *before* it becomes
    RUNNING. Optuna only ever fails RUNNING trials that have a heartbeat, so a worker killed
    between the claim and its first beat would otherwise leave the trial RUNNING forever;
    a beat for a trial another worker claims instead is harmless (that one beats it too).
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    for frozen in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        if beat:
            storage.record_heartbeat(trial_id)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id)  # what Study.ask does with a queued trial
        except UpdateFinishedTrialError:
            continue  # finished by another worker meanwhile
    return None


def retry_callback() -> Callable:
    """Optuna's callback that queues a heartbeat-failed trial again (its name since 4.9)."""
    import warnings

    import optuna.storages as storages
    from optuna.exceptions import ExperimentalWarning

    cls = (
        getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
        or storages.RetryFailedTrialCallback
    )
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8, and stable in use
        warnings.simplefilter("ignore", ExperimentalWarning)
        return cls(max_retry=MAX_RETRIES)


def worker_name() -> str:
    """This worker as trials record it: host and process id."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Beats for this worker's RUNNING trials every ``interval`` seconds, in its own thread.

    A thread, not the sweep's poll loop: drawing sweep.png or a slow disk must not make a
    live worker's trials look dead to the others. ``interval`` None (a journal file, one
    worker): no heartbeat at all.
    """

    def __init__(self, storage: Any, interval: float | None) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kvision-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def add(self, trial_id: int) -> None:
        """Start beating for a trial (at once: a trial with no beat yet is never stale)."""
        if not self.interval:
            return
        self.storage.record_heartbeat(trial_id)
        with self._lock:
            self.trial_ids.add(trial_id)

    def remove(self, trial_id: int) -> None:
        with self._lock:
            self.trial_ids.discard(trial_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = sorted(self.trial_ids)
            for trial_id in ids:
                # A lost beat is retried next interval; a database that stays away is
                # reported by the poll loop, which uses it too.
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(trial_id)


__all__ = ["Heartbeat", "claim", "retry_callback", "top_up", "used", "worker_name"]
