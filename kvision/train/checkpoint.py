"""Resumable checkpoints: weights, optimizer variables and loop state, written atomically and
verified on resume.

A checkpoint is a folder ``checkpoints/epoch-NNNN-...`` written under a temporary name and
renamed into place. Its ``manifest.json`` records a sequence number and the size and SHA-256
of every file in it, so a resume can tell an intact checkpoint from one damaged later (a
partial copy, a dying disk). The last ``KEEP`` checkpoints are kept while the trial runs, so
a damaged newest one falls back to the one before; ``latest.json`` names the newest for
people and older readers.

Only the part that reads the model runs on the trainer's thread: Keras' saving walk copies
the weights and optimizer variables (:mod:`kvision.train.weights_file`), and training goes
on while one background thread writes them into the temporary folder as ``save_weights``
would, makes the folder durable (fsync), hashes it, renames it into place and prunes the old
ones (the main job's AlexNet/2 checkpoints are 134 MB mid-stage; a stage's end checkpoint
holds the weights only, 44 MB, since a resume from it starts a fresh optimizer). The next
checkpoint, the end of a trial and any stop wait for that commit first
(:func:`wait_for_commits`), so at most one is in flight, and a process killed meanwhile
leaves the previous checkpoint as the newest intact one. A checkpoint of weights that have
not changed since the newest one (an evaluation's record after a stage's own checkpoint)
hard-links that one's weights file instead of writing it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kvision.runs.atomic import (
    atomic_write_json,
    commit,
    damage,
    file_digest,
    fsync_dir,
    fsync_file,
)
from kvision.runs.disk_space import DiskFull, disk_full_cause, ensure_space

if TYPE_CHECKING:
    from kvision.train.weights_file import Snapshot

LATEST = "latest.json"
MANIFEST = "manifest.json"
#: Checkpoints kept per running trial: the newest and one to fall back to if it is damaged.
KEEP = 2
#: Extra files of the trial (early stopping's best weights) carried inside each checkpoint.
BEST = "best.weights.h5"
WEIGHTS = "model.weights.h5"


@dataclass
class Lookup:
    """What a trial's checkpoint folder holds: the newest intact checkpoint and the damaged
    ones newer than it, as (name, reason)."""

    intact: tuple[Path, dict] | None = None
    damaged: list[tuple[str, str]] = field(default_factory=list)


def save_checkpoint(
    folder: Path,
    name: str,
    model: Any,
    state: dict,
    *,
    same_weights: bool = False,
    optimizer: bool = True,
) -> Path:
    """Write weights (with the optimizer's variables), generator states and ``state``.

    ``optimizer=False``: the weights only, for a checkpoint at a stage's end. A resume from
    one starts the next stage (or the trial's end) with a fresh optimizer, as the run did, so
    the optimizer's slots would never be read: for Adam they are two thirds of the file.

    The free space is checked first (h5py can crash on a full disk instead of failing); every
    checkpoint gets a folder of its own (never overwritten). Returns the folder it will be
    renamed to once the background commit is done (see the module's notes); checkpoints
    older than the last KEEP are removed only after that. ``same_weights``: the model's
    variables are those of the newest checkpoint, whose weights file is then linked.
    """
    wait_for_commits()
    folder.mkdir(parents=True, exist_ok=True)
    newest = find_checkpoint(folder, verify=False).intact
    linked = same_weights and newest  # a linked weights file takes no new space
    ensure_space(folder, 0 if linked else _bytes_after(newest, model, optimizer=optimizer))
    final = folder / f"{name}-{uuid.uuid4().hex[:6]}"
    tmp = folder / f".{final.name}.tmp"
    tmp.mkdir()
    try:
        known, weights = _write_files(
            tmp, model, state, folder, newest[0] if same_weights and newest else None, optimizer
        )
    except BaseException as exc:
        _discard(tmp, folder, model, exc)
    _COMMITS.submit(tmp, final, folder, _next_seq(folder), known, model, weights)
    return final


def _discard(tmp: Path, folder: Path, model: Any, exc: BaseException) -> None:
    """Remove an unfinished checkpoint folder and re-raise, a full disk as DiskFull."""
    shutil.rmtree(tmp, ignore_errors=True)
    full = disk_full_cause(exc)
    if full is not None and not isinstance(exc, DiskFull):
        raise DiskFull(folder, _estimate_bytes(folder, model), full.free) from exc
    raise exc


def _commit(
    tmp: Path,
    final: Path,
    folder: Path,
    seq: int,
    known: dict,
    model: Any,
    weights: Snapshot | None,
) -> None:
    """The background half: the weights file (from its snapshot), digests, manifest, fsync,
    rename, latest.json, pruning."""
    try:
        if weights is not None:
            weights.write(tmp / WEIGHTS)
        files = {}
        for path in sorted(tmp.iterdir()):
            if path.name not in known:
                fsync_file(path)
            files[path.name] = known.get(path.name) or file_digest(path)
        atomic_write_json(tmp / MANIFEST, {"seq": seq, "files": files})
        fsync_dir(tmp)
        commit(tmp, final)
    except BaseException as exc:
        _discard(tmp, folder, model, exc)
    atomic_write_json(folder / LATEST, {"checkpoint": final.name})
    _prune(folder)


class _Committer:
    """One background thread finishing checkpoints in order; errors reach the trainer."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def submit(self, *args: Any) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="kvision-checkpoint")
        self._pending = self._pool.submit(_commit, *args)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # re-raises the commit's error (DiskFull...) here


_COMMITS = _Committer()


def wait_for_commits() -> None:
    """Block until the checkpoint in flight (if any) is durable and in place; raise its error."""
    _COMMITS.wait()


def _write_files(
    tmp: Path, model: Any, state: dict, folder: Path, weights_from: Path | None, optimizer: bool
) -> tuple[dict, Snapshot | None]:
    """Write the checkpoint's small files; returns the manifest records already known (linked
    files) and the weights' snapshot the commit thread writes (None: already written)."""
    known, weights = {}, None
    record = _manifest(weights_from).get(WEIGHTS) if weights_from is not None else None
    if record is not None and (weights_from / WEIGHTS).exists():
        _link_or_copy(weights_from / WEIGHTS, tmp / WEIGHTS)
        known[WEIGHTS] = record
    else:
        from kvision.train.weights_file import snapshot  # Keras: only where a model is

        # The optimizer's variables go into the same file when the model is compiled.
        weights = snapshot(model, optimizer=optimizer)
        if weights is None:  # (save_weights writes the optimizer's variables too)
            model.save_weights(str(tmp / WEIGHTS))
    _write_npz(
        tmp / "rng.npz", {f"v{i:04d}": np.asarray(v) for i, v in enumerate(_rng_states(model))}
    )
    atomic_write_json(tmp / "state.json", state)
    if (folder / BEST).exists():  # early stopping's best so far belongs to this state
        _link_or_copy(folder / BEST, tmp / BEST)
    return known, weights


def _manifest(path: Path) -> dict:
    files = _read_json(path / MANIFEST).get("files")
    return files if isinstance(files, dict) else {}


def estimate_bytes(folder: Path, model: Any) -> int:
    """Bytes the next checkpoint needs: the newest one's size, or the variables' size.

    Waits for the checkpoint in flight first: its commit renames and prunes the folders
    this reads (early stopping's best weights are sized here too; model.keras is sized from
    the model alone, :func:`weights_file_bytes`).
    """
    wait_for_commits()
    return _estimate_bytes(folder, model)


def _estimate_bytes(folder: Path, model: Any) -> int:
    """:func:`estimate_bytes` without the wait (the commit thread's own error path)."""
    return _bytes_after(find_checkpoint(folder, verify=False).intact, model)


def _bytes_after(newest: tuple[Path, dict] | None, model: Any, *, optimizer: bool = True) -> int:
    """The next checkpoint's size: the newest one's, or the variables' if that is larger (a
    stage's end checkpoint holds no optimizer slots, the next one does)."""
    size = sum(p.stat().st_size for p in newest[0].iterdir() if p.is_file()) if newest else 0
    return max(size, weights_file_bytes(model, optimizer=optimizer))


def weights_file_bytes(model: Any, *, optimizer: bool = True) -> int:
    """What a file of the model's variables (with ``optimizer``, its optimizer's too) takes
    on disk: their bytes and a fifth more for the file's own structure."""
    variables = list(model.variables)
    slots = getattr(model, "optimizer", None)
    if slots is not None and optimizer:
        variables += list(slots.variables)
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) * 1.2)


def remove_checkpoints(folder: Path) -> None:
    """Drop a finished trial's checkpoints: its model.keras now holds the final state."""
    wait_for_commits()  # never remove a folder the commit thread is still renaming into
    shutil.rmtree(folder, ignore_errors=True)


def find_checkpoint(folder: Path, *, verify: bool = True) -> Lookup:
    """The newest checkpoint whose files match their manifest, and the damaged newer ones."""
    lookup = Lookup()
    for path in _newest_first(folder):
        reason = checkpoint_damage(path) if verify else None
        state = _read_state(path)
        if reason is None and state is None:
            reason = "state.json is unreadable"
        if reason is None:
            lookup.intact = (path, state)
            return lookup
        lookup.damaged.append((path.name, reason))
    return lookup


def latest_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """(checkpoint folder, state) of the newest intact checkpoint, or None."""
    return find_checkpoint(folder).intact


def checkpoint_damage(path: Path) -> str | None:
    """Why a checkpoint folder no longer matches its manifest, or None when it does."""
    try:
        files = json.loads((path / MANIFEST).read_text("utf-8"))["files"]
    except FileNotFoundError:
        return None  # written by a kvision without manifests: nothing to check against
    except (OSError, KeyError, ValueError):
        return "manifest.json is unreadable"
    for name, record in files.items():
        reason = damage(path / name, record)
        if reason:
            return reason
    return None


def _newest_first(folder: Path) -> list[Path]:
    """Complete checkpoint folders by sequence number, newest first (latest.json's for old ones)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    latest = _read_json(folder / LATEST).get("checkpoint")
    return sorted(found, key=lambda p: (_seq(p), p.name == latest), reverse=True)


def _seq(path: Path) -> int:
    seq = _read_json(path / MANIFEST).get("seq")
    return seq if isinstance(seq, int) else -1


def _next_seq(folder: Path) -> int:
    return max((_seq(p) for p in _newest_first(folder)), default=0) + 1


def _read_state(path: Path) -> dict | None:
    state = _read_json(path / "state.json")
    return state if "trial" in state else None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def restore_checkpoint(path: Path, model: Any) -> None:
    """Load weights, optimizer variables and generator states into a compiled model."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # so load_weights fills its variables too
    restore_weights(path, model)


def restore_files(path: Path, folder: Path) -> None:
    """Put the checkpoint's copy of the trial's extra files (best weights) back in place."""
    if (path / BEST).exists():
        tmp = folder / f".{BEST}.restore"
        tmp.unlink(missing_ok=True)
        _link_or_copy(path / BEST, tmp)
        commit(tmp, folder / BEST)
    else:
        (folder / BEST).unlink(missing_ok=True)


def restore_weights(path: Path, model: Any) -> None:
    """Weights and Keras seed-generator states (seeded random layers continue exactly).

    Unseeded random layers draw from the global generators, which the trainer re-seeds from
    (seed, epoch) at the start of every epoch, so they need no saved state.
    """
    import warnings

    with warnings.catch_warnings():
        # between stages the new stage's fresh optimizer is not built: skip the saved one
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(str(path / WEIGHTS))
    rng = path / "rng.npz"
    if rng.exists():
        with np.load(rng) as data:
            values = [data[k] for k in sorted(data.files)]
        states = _rng_states(model)
        if len(values) == len(states):
            for var, value in zip(states, values, strict=True):
                var.assign(value)


def save_best(folder: Path, model: Any) -> None:
    """Early stopping's best weights so far, written atomically (a checkpoint links them)."""
    folder.mkdir(parents=True, exist_ok=True)
    ensure_space(folder, estimate_bytes(folder, model))
    tmp = folder / f".partial.{BEST}"  # Keras wants the name to end in .weights.h5
    try:
        model.save_weights(str(tmp))
        commit(tmp, folder / BEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rng_states(model: Any) -> list:
    """Keras seed-generator states (dropout and other random layers); not in save_weights."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _write_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # made durable with the folder, by the commit


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link costs no space; filesystems without links get a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _prune(folder: Path) -> None:
    keep = {p.name for p in _newest_first(folder)[:KEEP]}
    for path in folder.iterdir():
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
