"""The kinds of event a run writes to events.jsonl (the contract in docs/architecture.md).

Writers and readers name kinds through these constants; a test checks that every kind the
code writes or reads is listed in :data:`EVENT_KINDS`.
"""

from __future__ import annotations

RUN_STARTED = "run_started"
RUN_RESUMED = "run_resumed"
DATA_PROGRESS = "data_progress"  # while a cache entry is built: files done, total, img/s, ETA
DATA_LOADED = "data_loaded"
TRIAL_STARTED = "trial_started"
TRIAL_RESUMED = "trial_resumed"
STAGE_STARTED = "stage_started"
PROGRESS = "progress"
EPOCH_END = "epoch_end"
EVALUATION_STARTED = "evaluation_started"  # before an evaluation: viewers show "evaluating"
EVALUATION = "evaluation"
ARTIFACT = "artifact"
STAGE_ENDED = "stage_ended"
TRIAL_FINISHED = "trial_finished"
TRIAL_FAILED = "trial_failed"  # a trial stopped on its own (non-finite loss); the run goes on
RUN_FINISHED = "run_finished"
RUN_FAILED = "run_failed"
RUN_INTERRUPTED = "run_interrupted"
WARNING = "warning"
PROFILE = "profile"  # after run_finished: seconds per phase of the run (kvision.runs.phases)

#: The last event of a run that ended, and the status it gives the run.
TERMINAL = {RUN_FINISHED: "finished", RUN_FAILED: "failed", RUN_INTERRUPTED: "interrupted"}

EVENT_KINDS = (
    RUN_STARTED,
    RUN_RESUMED,
    DATA_PROGRESS,
    DATA_LOADED,
    TRIAL_STARTED,
    TRIAL_RESUMED,
    STAGE_STARTED,
    PROGRESS,
    EPOCH_END,
    EVALUATION_STARTED,
    EVALUATION,
    ARTIFACT,
    STAGE_ENDED,
    TRIAL_FINISHED,
    TRIAL_FAILED,
    RUN_FINISHED,
    RUN_FAILED,
    RUN_INTERRUPTED,
    WARNING,
    PROFILE,
)
