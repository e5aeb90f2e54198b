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


def _pair_python(name: str, tmp_path: Path) -> Path:
    if name == "oldest":
        return chained_venv(tmp_path / "venv", sys.executable, OLDEST["keras"])
    newest = os.environ.get("KVISION_NEWEST_TORCH_VENV")
    if not newest:
        pytest.skip(
            f"torch {NEWEST['torch']} is a multi-GB install: .ci/run makes its environment "
            "and names it in KVISION_NEWEST_TORCH_VENV"
        )
    return Path(newest) / "bin" / "python"


@pytest.mark.parametrize("name", ["oldest", "newest"])
def test_portable_speed_and_end_to_end_tests_pass_on_the_pair(name, tmp_path):
    python = _pair_python(name, tmp_path)
    versions = _versions(python)
    assert versions == (OLDEST if name == "oldest" else NEWEST)
    ran = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *SUBSET])
    summary = ran.stdout.strip().splitlines()[-1] if ran.stdout.strip() else ""
    print(f"{name} pair {versions}: {summary}")
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary


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


def test_a_keras_missing_an_internal_trains_through_keras_layers_with_one_warning(tmp_path):
    python = chained_venv(tmp_path / "venv", sys.executable, "3.13.0")
    ran = _run([python, "-c", FIT_SCRIPT], cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("kvision: warning:")]
    assert len(warnings) == 1, ran.stderr
    assert "BatchNormalization().renorm is missing in keras 3.13.0" in warnings[0]
    # paths off, Keras' own call, and the loss fell on learnable labels
    assert ran.stdout.split()[-3:] == ["False", "False", "True"], ran.stdout


def test_pyproject_bounds_are_the_pairs_run_here():
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    assert f'"torch>={OLDEST["torch"]}",' in text and f'"keras>={OLDEST["keras"]}",' in text
