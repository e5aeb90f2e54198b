"""The run directory: the only interface between a training process and its readers."""

from kvision.runs.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from kvision.runs.reader import RunReader, TrialIdentity, find_runs, is_run_dir, second_metric
from kvision.runs.writer import RunWriter

__all__ = [
    "RunReader",
    "RunWriter",
    "TrialIdentity",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "find_runs",
    "is_run_dir",
    "second_metric",
]
