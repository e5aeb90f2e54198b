"""The torch/Keras range pyproject.toml admits, run at both ends (issue 26).

pyproject.toml's lower bounds are the oldest pair run here, and it has no upper bound: the
newest torch and Keras the package index serves run here too. Each pair gets a virtual
environment of its own that holds only its torch/Keras and sees the suite's environment for
everything else (a ``.pth`` line), so a pair costs a Keras download, not a second install of
the whole stack. In it the portable, speed-equivalence and end-to-end tests run as the
suite runs them. The newest torch is several GB (a CUDA build from this machine's disk):
``.ci/run`` installs it once into its own environment and names it in
``KVISION_NEWEST_TORCH_VENV``; without it that pair is skipped with the reason.

Keras 3.13, one release below the lower bound, lacks ``BatchNormalization.renorm``, which
the speed paths read: there the internals check turns them off with one warning and a model
trains through Keras' own layers, as it would on a release nobody has tried.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

OLDEST = {"torch": "2.13.0", "keras": "3.14.0"}  # = pyproject.toml's lower bounds
NEWEST = {"torch": "2.14.1", "keras": "3.15.1"}  # the newest the index serves here
#: What runs on each pair: the portable formats, the speed paths against Keras' own layers
#: (less the two largest of its cases), and a recipe end to end with show/ls/export.
SUBSET = [
    "tests/test_portable.py",
    "tests/test_speed_equivalence.py",
    "tests/test_runner.py::test_run_directory_contract",
    "tests/test_runner.py::test_show_ls_export",
    "-k",
    "not resnet20 and not adamw",
]
VERSIONS = "import keras, torch; print(torch.__version__.split('+')[0], keras.__version__)"


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "KERAS_BACKEND": "torch"}


def _run(cmd: list, cwd: Path = ROOT, timeout: int = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def chained_venv(where: Path, base_python: str, keras_version: str | None) -> Path:
    """A venv seeing ``base_python``'s site-packages after its own, holding ``keras_version``."""
    base_site = _run([base_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    own = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    # addsitedir (not a bare path) so the base's own .pth files (the editable kvision) apply.
    (own / "zz_base.pth").write_text(
        f"import site; site.addsitedir({base_site.stdout.strip()!r})\n", "utf-8"
    )
    if keras_version:
        pip = [python, "-m", "pip", "install", "-q", "--no-deps", f"keras=={keras_version}"]
        done = _run(pip, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return python


def _versions(python: Path) -> dict[str, str]:
    torch, keras = _run([python, "-c", VERSIONS]).stdout.split()[-2:]
    return {"torch": torch, "keras": keras}


def _pair_python(name: str, where: Path) -> Path | str:
    """The pair's interpreter, or why the pair cannot run here."""
    if name == "oldest":
        return chained_venv(where / "venv", sys.executable, OLDEST["keras"])
    newest = os.environ.get("KVISION_NEWEST_TORCH_VENV")
    if not newest:
        return (
            f"torch {NEWEST['torch']} is a multi-GB install: .ci/run makes its environment "
            "and names it in KVISION_NEWEST_TORCH_VENV"
        )
    return Path(newest) / "bin" / "python"


FIT_SCRIPT = """
import numpy as np
import keras
from kvision.models import create_model, speed_paths_status
from kvision.recipe.schema_training import TrainingSection
from kvision.train.compile import compile_model
keras.utils.set_random_seed(0)
model = create_model("lenet", input_shape=(12, 12, 1), num_classes=3, preprocess=([0.5], [0.5]))
compile_model(model, TrainingSection())
x = np.random.default_rng(0).integers(0, 256, size=(32, 12, 12, 1)).astype("float32")
y = np.digitize(x.mean(axis=(1, 2, 3)), np.quantile(x.mean(axis=(1, 2, 3)), [1 / 3, 2 / 3]))
losses = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"]
print(speed_paths_status()[0], "direct_graph" in model.call.__qualname__, losses[0] > losses[-1])
"""


@dataclass
class Started:
    """A child run of this module, started at once: its interpreter and its process."""

    python: Path
    proc: subprocess.Popen

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=1500)
        return self.proc.returncode, out, err


def _start(python: Path, args: list, cwd: Path = ROOT) -> Started:
    proc = subprocess.Popen(
        [str(c) for c in [python, *args]],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Started(python, proc)


#: This module's child runs, by the test that reads each.
RUN_OF_TEST = {
    "_on_the_pair[oldest]": "oldest",
    "_on_the_pair[newest]": "newest",
    "keras_missing_an_internal": "keras-3.13",
}


class ChildRuns:
    """This module's child runs (each pair's SUBSET, the Keras-3.13 fit), or why one cannot
    run here. Asked for one, it starts every run the session's selected tests read before
    waiting for any: each spends much of its time on one core (interpreter start-up, imports,
    small models), so on two cores the two pairs together took 34 s where one after the other
    took 48 s. Under pytest-xdist the workers already fill both cores, and a worker does not
    know which of the module's tests it will get: it starts only the run asked for."""

    def __init__(self, tmp_path_factory, selected: list[str]) -> None:
        self.tmp = tmp_path_factory
        self.selected = selected
        self.runs: dict[str, Started | str] = {}

    def get(self, name: str) -> Started | str:
        names = [name] if os.environ.get("PYTEST_XDIST_WORKER") else [name, *self.selected]
        for other in names:
            if other not in self.runs:
                self.runs[other] = self._start(other)
        return self.runs[name]

    def _start(self, name: str) -> Started | str:
        where = self.tmp.mktemp(name)
        if name == "keras-3.13":
            python = chained_venv(where / "venv", sys.executable, "3.13.0")
            return _start(python, ["-c", FIT_SCRIPT], cwd=where)
        python = _pair_python(name, where)
        pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
        return python if isinstance(python, str) else _start(python, pytest_args + SUBSET)

    def stop(self) -> None:
        for run in self.runs.values():
            if isinstance(run, Started) and run.proc.poll() is None:
                run.proc.kill()
                run.proc.communicate()


@pytest.fixture(scope="module")
def child_runs(request, tmp_path_factory) -> Iterator[ChildRuns]:
    names = [item.name for item in request.session.items]
    selected = [run for test, run in RUN_OF_TEST.items() if any(test in n for n in names)]
    runs = ChildRuns(tmp_path_factory, selected)
    yield runs
    runs.stop()


# a venv and a pytest run in it; in one process the first also starts the other child runs
@pytest.mark.slow(seconds=30)
@pytest.mark.parametrize("name", ["oldest", "newest"])
def test_portable_speed_and_end_to_end_tests_pass_on_the_pair(name, child_runs):
    run = child_runs.get(name)
    if isinstance(run, str):
        pytest.skip(run)
    versions = _versions(run.python)  # asked while the pair's run is already going
    assert versions == (OLDEST if name == "oldest" else NEWEST)
    code, out, err = run.finish()
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(f"{name} pair {versions}: {summary}")
    assert code == 0, out[-4000:] + err[-2000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary


def test_a_keras_missing_an_internal_trains_through_keras_layers_with_one_warning(child_runs):
    code, out, err = child_runs.get("keras-3.13").finish()
    assert code == 0, out[-3000:] + err[-3000:]
    warnings = [line for line in err.splitlines() if line.startswith("kvision: warning:")]
    assert len(warnings) == 1, err
    assert "BatchNormalization().renorm is missing in keras 3.13.0" in warnings[0]
    # paths off, Keras' own call, and the loss fell on learnable labels
    assert out.split()[-3:] == ["False", "False", "True"], out


def test_pyproject_bounds_are_the_pairs_run_here():
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    assert f'"torch>={OLDEST["torch"]}",' in text and f'"keras>={OLDEST["keras"]}",' in text
