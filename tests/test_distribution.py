"""The wheel as a user gets it: complete, installed without -e, run from outside the checkout.

Builds the wheel, checks it holds every module and data file, installs it with pip's
resolver into an environment that already has torch (the newest the index serves, in CI)
and checks pip kept that torch, imports every module of the installed packages, and from a
folder outside the checkout runs a shipped recipe by name, exports its model and classifies
an image with it. The environment sees an installed one's packages, so the install
downloads nothing: no torch is reinstalled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A fresh environment's install is most of the cost; on a loaded shared machine it took up to
# 15 minutes, past the suite's 900 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

# Tiny settings for the shipped naive_vs_expert recipe: VGG only, 4 images a class, 1 epoch.
QUICK = [
    "data.limit_per_class=4",
    'arms[0].models=["vgg"]',
    'arms[1].models=["vgg"]',
    "arms[0].stages[0].epochs=1",
    "arms[1].stages[0].epochs=1",
    "arms[1].stages[1].epochs=1",
    "insight.enabled=false",
]

IMPORT_ALL = """
import importlib, pkgutil, sys
import kvision, kvision_tui
names = []
for pkg in (kvision, kvision_tui):
    names.append(pkg.__name__)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    if not name.endswith(".__main__"):  # running it is `python -m`, not an import
        importlib.import_module(name)
print(kvision.__file__)
print(len(names), "modules")
"""


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


#: Not part of the source (top-level folders; caches and virtual environments anywhere): a
#: build from a copy without them cannot pick up stale files (setuptools reuses build/) or
#: local runs. Environments are told by their pyvenv.cfg, whatever their name: .ci/run's side
#: environments (.venv-tf, .venv-newest) hold 6 GB, and copying them filled CI's disk.
NOT_SOURCE = {".git", ".venv", "build", "dist", "runs", ".whl", ".gl", "site"}
CACHES = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*cache")


def _not_source(folder: str, names: list[str]) -> set[str]:
    top = NOT_SOURCE & set(names) if Path(folder) == ROOT else set()
    venvs = {name for name in names if Path(folder, name, "pyvenv.cfg").is_file()}
    return top | venvs | set(CACHES(folder, names))


def test_the_source_copy_leaves_out_environments_whatever_their_name(tmp_path) -> None:
    side = tmp_path / ".venv-side"
    (side / "lib").mkdir(parents=True)
    (side / "pyvenv.cfg").write_text("home = /usr/bin\n", "utf-8")
    (tmp_path / "kvision").mkdir()
    (tmp_path / "kvision" / "__pycache__").mkdir()
    names = [".venv-side", "kvision"]
    assert _not_source(str(tmp_path), names) == {".venv-side"}
    assert _not_source(str(tmp_path / "kvision"), ["__pycache__", "a.py"]) == {"__pycache__"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=_not_source, symlinks=True)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        cwd=out,
    )
    (found,) = out.glob("kvision-*.whl")
    return found


def _site_of(python: str | Path) -> str:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return _run([str(python), "-c", code], cwd=ROOT).stdout.strip()


#: The torch the wheel's environment already has: the newest the index serves where .ci/run
#: made its environment (KVISION_NEWEST_TORCH_VENV, a CUDA build of several GB), else this one.
NEWEST = os.environ.get("KVISION_NEWEST_TORCH_VENV")
BASE_PYTHON = str(Path(NEWEST) / "bin" / "python") if NEWEST else sys.executable
TORCH = "import torch; print(torch.__version__, torch.__file__)"


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A user's environment that already has torch (and kvision's other dependencies), with
    the wheel installed by pip's resolver (no -e, no --no-deps): the install must keep the
    torch it finds. The environment sees BASE_PYTHON's packages after its own (a .pth line),
    so nothing is downloaded again; a requirement that torch did not meet would make pip
    install another torch into this environment, which the test sees."""
    where = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(where)], cwd=where)
    python = where / "bin" / "python"
    Path(_site_of(python), "zz_base.pth").write_text(
        f"import site; site.addsitedir({_site_of(BASE_PYTHON)!r})\n", "utf-8"
    )
    before = _run([str(python), "-c", TORCH], cwd=where).stdout
    installed = _run(
        [str(python), "-m", "pip", "install", "--no-compile", str(wheel)], cwd=where, timeout=900
    )
    assert _run([str(python), "-c", TORCH], cwd=where).stdout == before, installed.stdout
    assert not list(Path(_site_of(python)).glob("torch*")), installed.stdout  # none added
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.mark.slow(seconds=15)  # makes the module's venv
def test_installing_the_wheel_keeps_the_torch_already_there(venv):
    version, location = _run([str(venv / "bin" / "python"), "-c", TORCH], cwd=venv).stdout.split()
    assert Path(location).is_relative_to(Path(_site_of(BASE_PYTHON)))
    print(f"kept torch {version} from {location}")
    if NEWEST:
        assert version.split("+")[0] == "2.14.1"  # the newest the index serves here


def test_wheel_holds_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "kvision").rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    sources += [f"kvision_tui/{p.name}" for p in (ROOT / "tui").glob("*.py")]
    assert sorted(set(sources) - names) == []
    recipes = [f"kvision/recipes/{p.name}" for p in (ROOT / "recipes").glob("*.toml")]
    assert recipes and sorted(set(recipes) - names) == []
    data = [
        "kvision/py.typed",
        "kvision/data/builtin/fashion7k.npz",
        "kvision/data/builtin/FASHION-MNIST-LICENSE",
        "kvision-0.1.0.dist-info/licenses/LICENSE",
    ]
    assert sorted(set(data) - names) == []
    notice = zipfile.ZipFile(wheel).read("kvision/data/builtin/FASHION-MNIST-LICENSE").decode()
    assert "Copyright (c) 2017 Zalando SE" in notice and "Permission is hereby granted" in notice
    assert not any(n.startswith(("tests/", "tui/", "benchmarks/")) for n in names)


@pytest.mark.slow(seconds=20)
def test_installed_wheel_imports_everything_and_runs_a_shipped_recipe(venv, wheel, tmp_path):
    bin_dir = venv / "bin"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    imported = _run([str(bin_dir / "python"), "-c", IMPORT_ALL], cwd=outside)
    location, count = imported.stdout.split("\n")[:2]
    assert Path(location).is_relative_to(venv), location  # the installed copy, not the checkout
    assert int(count.split()[0]) > 100
    listing = _run([str(bin_dir / "kvision"), "recipes"], cwd=outside).stdout
    assert "naive_vs_expert" in listing and "Report 000" in listing
    args = [str(bin_dir / "kvision"), "run", "naive_vs_expert", "--runs-dir", "runs"]
    for item in QUICK:
        args += ["--set", item]
    ran = _run(args, cwd=outside)
    assert "finished in" in ran.stdout
    (run_dir,) = (outside / "runs").iterdir()
    assert (run_dir / "report.md").is_file()
    _run(
        [str(bin_dir / "kvision"), "export", str(run_dir), "--trial", "vgg-expert", "--to", "out"],
        cwd=outside,
    )
    assert (outside / "out/vgg-expert.keras").is_file()
    assert (outside / "out/vgg-expert.keras.json").is_file()
    copied = _run([str(bin_dir / "kvision"), "recipes", "copy", "naive_vs_expert"], cwd=outside)
    shipped = zipfile.ZipFile(wheel).read("kvision/recipes/naive_vs_expert.toml")
    assert (outside / "naive_vs_expert.toml").read_bytes() == shipped
    assert copied.stdout.strip().endswith("naive_vs_expert.toml")
